"""PyTorch peer of benches/train_step.rs: the same model and training step on the CPU.

One-hot input (an Embedding with identity weights would be the same product) -> nn.LSTM(38 -> 256)
-> dropout 0.2 -> Linear(256 -> 38), cross-entropy at every position, Adam(lr 1e-3, eps 1e-7),
batch B=64 windows of T=64 steps. Times N optimiser steps after a warm-up and prints
step_samples_per_s = B*T*N / seconds, the unit criterion reports for our bench.

    python3 benches/peers/torch_cpu_step.py [--threads 2] [--steps 30]
"""

import argparse
import json
import time

import torch
from torch import nn


class Melody(nn.Module):
    """Submodule names `lstm` and `dense` give the state_dict keys our checkpoints use.

    Layer 0 reads `input_width` columns (default: the vocabulary, one-hot symbols)."""

    def __init__(
        self, vocab: int, hidden: int, layers: int, dropout: float, input_width: int | None = None
    ):
        super().__init__()
        self.vocab = vocab
        self.input_width = input_width or vocab
        self.lstm = nn.LSTM(self.input_width, hidden, num_layers=layers)  # time-major, like ours
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden, vocab)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        """indices [T, B] (one per step) or [T, B, K] -> logits [T, B, V], from a zero state.

        Each step's input is the sum of the one-hots of its K indices (a repeated index counts
        twice)."""
        if indices.dim() == 2:
            indices = indices[:, :, None]
        weight = self.lstm.weight_ih_l0
        multi_hot = nn.functional.one_hot(indices, self.input_width).to(weight.dtype).sum(dim=2)
        hidden, _ = self.lstm(multi_hot)
        return self.dense(self.dropout(hidden))


def training_step(model: Melody, optimiser, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """One optimiser step with the loss at every position; reads the loss back, as ours does."""
    optimiser.zero_grad(set_to_none=True)
    logits = model(inputs)
    loss = nn.functional.cross_entropy(logits.reshape(-1, model.vocab), targets.reshape(-1))
    loss.backward()
    optimiser.step()
    return loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30, help="timed optimiser steps")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=38)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Melody(args.vocab, args.hidden, 1, 0.2)
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    inputs = torch.randint(args.vocab, (args.window, args.batch))
    targets = torch.randint(args.vocab, (args.window, args.batch))

    for _ in range(args.warmup):
        training_step(model, optimiser, inputs, targets)
    start = time.perf_counter()
    for _ in range(args.steps):
        training_step(model, optimiser, inputs, targets)
    seconds = time.perf_counter() - start

    samples = args.batch * args.window * args.steps
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": args.threads,
                "ms_per_step": 1e3 * seconds / args.steps,
                "step_samples_per_s": samples / seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
