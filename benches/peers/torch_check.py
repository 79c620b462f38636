"""Cross-check a melody-engine checkpoint in PyTorch.

Loads our safetensors checkpoint into the equivalent nn.LSTM + nn.Linear module (the tensor names
are the state_dict keys; layer 0 reads the checkpoint's `input_width` columns, the sum of the
one-hots of each step's `inputs_per_step` indices) and either

- runs the evaluate protocol (one-hot models): for every window of `window` (64) consecutive
  symbols of DIR/dataset.txt, window start 0 .. len-window-1, predict the symbol after the window
  from a zero state; report mean cross-entropy, accuracy and perplexity as JSON
  {"windows", "loss", "accuracy", "perplexity"};

    python3 benches/peers/torch_check.py --model out/model.safetensors --data out/data [--max-windows N]

  DIR holds dataset.txt (space-separated symbols) and vocab.json (an object symbol -> id);

- or takes one batch, JSON {"inputs": [T][B][K] indices, "targets": [T][B] symbol ids,
  "objective": "all" | "last"}, and reports in float64, without dropout, the mean cross-entropy
  over the loss positions and its gradient for every tensor (flat, in the tensor's row-major
  order) as JSON {"loss", "count", "grads": {name: [...]}} (tests/gradients.rs compares them with
  the CPU engine's):

    python3 benches/peers/torch_check.py --model m.safetensors --gradients batch.json
"""

import argparse
import json
import math
import random
import struct
from pathlib import Path

import torch
from torch import nn

from torch_cpu_step import Melody


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file (format: u64 header length, JSON header, data)."""
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    metadata = header.pop("__metadata__", {})
    data = raw[8 + header_len :]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {name}: dtype {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        values = torch.frombuffer(bytearray(data[start:end]), dtype=torch.float32)
        tensors[name] = values.reshape(info["shape"])
    return tensors, metadata


def load_model(path: Path) -> tuple[Melody, dict, list[str]]:
    """The checkpoint as a Melody module in eval mode, with its config and vocabulary."""
    tensors, metadata = read_safetensors(path)
    config = json.loads(metadata["config"])
    vocab = json.loads(metadata["vocab"])
    # Checkpoints written before multi-hot inputs read one symbol per step.
    width = config.get("input_width", config["vocab_size"])
    model = Melody(config["vocab_size"], config["hidden"], config["layers"], config["dropout"], width)
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model, config, vocab


def batch_gradients(model: Melody, batch: dict) -> dict:
    """Mean cross-entropy at the batch's loss positions and its gradient, in float64."""
    model = model.double()
    inputs = torch.tensor(batch["inputs"])  # [T, B, K]
    targets = torch.tensor(batch["targets"])  # [T, B]
    logits = model(inputs)
    if batch["objective"] == "last":
        logits, targets = logits[-1:], targets[-1:]
    loss = nn.functional.cross_entropy(logits.reshape(-1, model.vocab), targets.reshape(-1))
    loss.backward()
    grads = {name: p.grad.reshape(-1).tolist() for name, p in model.named_parameters()}
    return {"loss": loss.item(), "count": targets.numel(), "grads": grads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="checkpoint .safetensors")
    task = parser.add_mutually_exclusive_group(required=True)
    task.add_argument("--data", type=Path, help="dir with dataset.txt, vocab.json")
    task.add_argument("--gradients", type=Path, help="one batch (JSON) to take the gradient of")
    parser.add_argument("--max-windows", type=int, help="evaluate a fixed-seed sample of windows")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, config, checkpoint_vocab = load_model(args.model)
    if args.gradients is not None:
        print(json.dumps(batch_gradients(model, json.loads(args.gradients.read_text()))))
        return
    if (config.get("input_width", config["vocab_size"]), config.get("inputs_per_step", 1)) != (
        config["vocab_size"],
        1,
    ):
        raise SystemExit(f"{args.model} reads multi-hot inputs; dataset.txt has one symbol a step")
    vocab = json.loads((args.data / "vocab.json").read_text())
    if [s for s, _ in sorted(vocab.items(), key=lambda kv: kv[1])] != checkpoint_vocab:
        raise SystemExit(f"{args.data / 'vocab.json'} differs from the vocabulary in {args.model}")

    symbols = torch.tensor([vocab[s] for s in (args.data / "dataset.txt").read_text().split()])
    window = config["window"]
    starts = list(range(len(symbols) - window))
    if args.max_windows is not None and args.max_windows < len(starts):
        starts = sorted(random.Random(0).sample(starts, args.max_windows))

    loss_sum, correct = 0.0, 0
    offsets = torch.arange(window)
    with torch.no_grad():
        for first in range(0, len(starts), args.batch):
            batch_starts = torch.tensor(starts[first : first + args.batch])
            inputs = symbols[batch_starts[None, :] + offsets[:, None]]  # [T, B]
            targets = symbols[batch_starts + window]
            logits = model(inputs)[-1]  # the step after the window
            loss_sum += nn.functional.cross_entropy(logits, targets, reduction="sum").item()
            correct += (logits.argmax(dim=1) == targets).sum().item()

    loss = loss_sum / len(starts)
    print(
        json.dumps(
            {
                "windows": len(starts),
                "loss": loss,
                "accuracy": correct / len(starts),
                "perplexity": math.exp(loss),
            }
        )
    )


if __name__ == "__main__":
    main()
