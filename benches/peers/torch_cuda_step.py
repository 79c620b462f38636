"""PyTorch (cuDNN) peer of the `gpu_vs_cpu` group of benches/train_step.rs: the same model and
training step on a CUDA device.

The model of torch_cpu_step.py (one-hot 38 -> nn.LSTM 256, cuDNN -> dropout 0.2 -> Linear 38,
cross-entropy at every position, Adam lr 1e-3 eps 1e-7), windows of T=64, for each batch size.
Every step reads its loss back (`loss.item()`). Times N optimiser steps after a warm-up and prints
one JSON line per precision and batch size with step_samples_per_s = B*T*N / seconds. Precision
"fp32" is strict fp32, as our kernels compute (no TF32 in cuDNN or in the Linear layer);
"default" is PyTorch's defaults (cuDNN may use TF32 tensor cores).

    python3 benches/peers/torch_cuda_step.py [--precisions fp32 default] [--batches 64 512] [--steps 100]
"""

import argparse
import json
import time

import torch

from torch_cpu_step import Melody, training_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "default"],
                        default=["fp32", "default"])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--steps", type=int, default=100, help="timed optimiser steps")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=38)
    args = parser.parse_args()

    device = torch.device("cuda")
    defaults = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    for precision in args.precisions:
        strict = precision == "fp32"
        torch.backends.cuda.matmul.allow_tf32 = False if strict else defaults[0]
        torch.backends.cudnn.allow_tf32 = False if strict else defaults[1]
        for batch in args.batches:
            time_steps(args, device, precision, batch)


def time_steps(args: argparse.Namespace, device: torch.device, precision: str, batch: int) -> None:
    """Times args.steps optimiser steps at one batch size and prints their JSON line."""
    torch.manual_seed(0)
    model = Melody(args.vocab, args.hidden, 1, 0.2).to(device)
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    inputs = torch.randint(args.vocab, (args.window, batch), device=device)
    targets = torch.randint(args.vocab, (args.window, batch), device=device)

    for _ in range(args.warmup):
        training_step(model, optimiser, inputs, targets)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        training_step(model, optimiser, inputs, targets)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "cudnn": torch.backends.cudnn.version(),
                "device": torch.cuda.get_device_name(),
                "precision": precision,
                "allow_tf32": [torch.backends.cuda.matmul.allow_tf32,
                               torch.backends.cudnn.allow_tf32],
                "batch": batch,
                "ms_per_step": 1e3 * seconds / args.steps,
                "step_samples_per_s": batch * args.window * args.steps / seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
