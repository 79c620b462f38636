"""Cross-check a melody-engine checkpoint in PyTorch.

Loads our safetensors checkpoint into the equivalent nn.LSTM + nn.Linear module (the tensor names
are the state_dict keys) and runs the evaluate protocol: for every window of `window` (64)
consecutive symbols of DIR/dataset.txt, window start 0 .. len-window-1, predict the symbol after
the window from a zero state; report mean cross-entropy, accuracy and perplexity as JSON
{"windows", "loss", "accuracy", "perplexity"}.

    python3 benches/peers/torch_check.py --model out/model.safetensors --data out/data [--max-windows N]

DIR holds dataset.txt (space-separated symbols) and vocab.json (an object symbol -> id).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="checkpoint .safetensors")
    parser.add_argument("--data", type=Path, required=True, help="dir with dataset.txt, vocab.json")
    parser.add_argument("--max-windows", type=int, help="evaluate a fixed-seed sample of windows")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tensors, metadata = read_safetensors(args.model)
    config = json.loads(metadata["config"])
    checkpoint_vocab = json.loads(metadata["vocab"])
    vocab = json.loads((args.data / "vocab.json").read_text())
    if [s for s, _ in sorted(vocab.items(), key=lambda kv: kv[1])] != checkpoint_vocab:
        raise SystemExit(f"{args.data / 'vocab.json'} differs from the vocabulary in {args.model}")

    model = Melody(config["vocab_size"], config["hidden"], config["layers"], config["dropout"])
    model.load_state_dict(tensors, strict=True)
    model.eval()

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
