//! The library's modules form the layers `src/lib.rs` documents: each needs only the ones before
//! it. This reads every `crate::…` path in every library source file (doc links included: a link
//! that reaches up is a dependency too; unit tests excluded) and checks it against the numbered
//! list in lib.rs's module doc, which must name every module lib.rs declares.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Module → layer, from lib.rs's doc lines such as "//! 3. `key`: a song's key.", bottom
/// first. The doc is the table, so what it says cannot drift from what is checked.
fn documented_layers(lib: &str) -> BTreeMap<String, usize> {
    lib.lines()
        .filter_map(|line| {
            let (number, rest) = line.strip_prefix("//! ")?.split_once(". `")?;
            let name = rest.split('`').next()?;
            Some((name.to_string(), number.parse().ok()?))
        })
        .collect()
}

/// The modules lib.rs declares (`pub mod NAME;`).
fn declared_modules(lib: &str) -> BTreeSet<String> {
    lib.lines()
        .filter_map(|line| line.trim().strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(';').trim().to_string())
        .collect()
}

/// The top-level module a file under src/ belongs to: src/x.rs and src/x/… are `x`.
fn module_of(relative: &Path) -> String {
    let first = relative.components().next().unwrap().as_os_str();
    let name = Path::new(first).file_stem().unwrap();
    name.to_string_lossy().into_owned()
}

/// The modules a source text names as `crate::NAME`, up to its unit tests.
fn named_modules(source: &str) -> BTreeSet<String> {
    let code = source.split("#[cfg(test)]").next().unwrap();
    code.match_indices("crate::")
        // `$crate::` in a macro names the macro's crate, not a module of this one.
        .filter(|&(at, _)| !code[..at].ends_with('$'))
        .map(|(at, prefix)| {
            code[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn lib_rs_documents_a_layer_for_every_module_it_declares() {
    let lib = fs::read_to_string(source_dir().join("lib.rs")).unwrap();
    let layers = documented_layers(&lib);
    let documented: BTreeSet<String> = layers.keys().cloned().collect();
    assert_eq!(documented, declared_modules(&lib));
}

#[test]
fn every_module_needs_only_the_layers_before_it() {
    let src = source_dir();
    let layers = documented_layers(&fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut reaching_up = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = module_of(relative);
        // The binary (main.rs and its cli/) sits above the whole library.
        let Some(&here) = layers.get(&module) else {
            assert!(
                ["lib", "main", "cli"].contains(&module.as_str()),
                "{}: module {module} has no layer in lib.rs",
                relative.display()
            );
            continue;
        };
        for named in named_modules(&fs::read_to_string(file).unwrap()) {
            let there = *layers
                .get(&named)
                .unwrap_or_else(|| panic!("{}: crate::{named} is no module", relative.display()));
            if named != module && there >= here {
                reaching_up.push(format!(
                    "{}: {module} (layer {here}) names {named} (layer {there})",
                    relative.display()
                ));
            }
        }
    }
    assert!(
        reaching_up.is_empty(),
        "modules that reach up or sideways:\n{}",
        reaching_up.join("\n")
    );
}

#[test]
fn the_checker_reads_paths_doc_links_and_layers() {
    let source =
        "use crate::kern;\n/// See [`crate::train::train`].\nfn f() { crate::gpu::open(); }\n\
                  macro_rules! m { () => { $crate::x::y() } }\n\
                  #[cfg(test)]\nmod tests { use crate::assess; }\n";
    let named: Vec<String> = named_modules(source).into_iter().collect();
    assert_eq!(named, ["gpu", "kern", "train"]);
    let lib = "//! 1. `atomic`: files.\n//! 2. `kern`: reads.\n//! Text, 3. `not` a layer.\npub mod kern;\n";
    let layers = documented_layers(lib);
    assert_eq!(layers.get("atomic"), Some(&1));
    assert_eq!(layers.get("kern"), Some(&2));
    assert_eq!(layers.len(), 2);
    assert_eq!(declared_modules(lib), BTreeSet::from(["kern".to_string()]));
}
