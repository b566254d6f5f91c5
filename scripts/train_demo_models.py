"""Train the demo families shipped in flows/demo/repos: small PyTorch MLPs on scikit-learn's bundled digits.

    pip install scikit-learn && python scripts/train_demo_models.py

Two families, each a controlled experiment from the HT-SR literature (Martin & Mahoney 2021):
  * digits-mlp-bs{B}: one architecture (64-256-256-10), batch size B varied; smaller batches regularize more.
  * digits-mlp-w{H}:  one training recipe, hidden width H varied.
Each model is trained from a fixed seed, its test accuracy measured on a held-out 30% split (never seen in
training), and written as ROOT/wwhub-demo/<name>/ with model.safetensors and a README.md whose model-index carries
that accuracy. Weights are stored as float16 to keep the package small (the analysis upcasts exactly).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

OUT = Path(__file__).resolve().parents[1] / "flows" / "demo" / "repos" / "wwhub-demo"
EPOCHS = 60
LEARNING_RATE = 0.02


def data(seed: int = 0):
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.3, random_state=seed, stratify=digits.target
    )
    return (
        torch.from_numpy(x_train),
        torch.from_numpy(y_train).long(),
        torch.from_numpy(x_test),
        torch.from_numpy(y_test).long(),
    )


def mlp(hidden: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Linear(64, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 10),
    )


def train(hidden: int, batch_size: int, seed: int) -> tuple[torch.nn.Module, float]:
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = data()
    model = mlp(hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(EPOCHS):
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(1) == y_test).float().mean())
    return model, accuracy


def write(name: str, model: torch.nn.Module, accuracy: float, description: str, hidden: int, batch: int) -> None:
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"layers.{k}": v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(folder / "model.safetensors"))
    card = {
        "library_name": "pytorch",
        "pipeline_tag": "image-classification",
        "tags": ["wwhub-demo", "digits"],
        "datasets": ["sklearn-digits"],
        "model-index": [
            {
                "name": name,
                "results": [
                    {
                        "task": {"type": "image-classification", "name": "Image Classification"},
                        "dataset": {"name": "sklearn-digits", "type": "sklearn-digits", "split": "test"},
                        "metrics": [{"type": "accuracy", "value": round(accuracy, 4), "name": "Test accuracy"}],
                    }
                ],
            }
        ],
    }
    text = (
        f"---\n{yaml.safe_dump(card, sort_keys=False)}---\n\n# {name}\n\n{description}\n\n"
        f"MLP 64-{hidden}-{hidden}-10, SGD (lr {LEARNING_RATE}, momentum 0.9), batch size {batch}, "
        f"{EPOCHS} epochs, trained by `scripts/train_demo_models.py` on 70% of scikit-learn's digits; "
        f"accuracy measured on the held-out 30%.\n"
    )
    (folder / "README.md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    if OUT.exists():
        shutil.rmtree(OUT)
    for batch in (8, 32, 128, 512, 1024):
        model, accuracy = train(256, batch, seed=1)
        write(f"digits-mlp-bs{batch}", model, accuracy, f"Batch-size family member: batch size {batch}.", 256, batch)
        print(f"digits-mlp-bs{batch:<5} accuracy {accuracy:.4f}", flush=True)
    for hidden in (16, 32, 64, 128, 256, 512):
        model, accuracy = train(hidden, 32, seed=2)
        write(f"digits-mlp-w{hidden}", model, accuracy, f"Width family member: hidden width {hidden}.", hidden, 32)
        print(f"digits-mlp-w{hidden:<6} accuracy {accuracy:.4f}", flush=True)


if __name__ == "__main__":
    main()
