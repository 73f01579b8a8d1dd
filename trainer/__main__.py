"""Run the trainer alone: ``python -m trainer BASE_MODEL TRAIN_FILE OUTPUT_DIR [--nprocs 2] [--n-epochs 3 …]``.

``--kernels '{"liger": "off", "activation_checkpointing": 2}'`` overrides the kernel plan (``trainer.kernels``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from pydantic import TypeAdapter

from trainer.config import Hyperparameters, RunSpec
from trainer.kernels import KernelOptions


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__)
    parser.add_argument("base_model", help="hub id or local model directory")
    parser.add_argument("train_file", type=Path, help="JSONL dataset")
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--validation-file", type=Path)
    parser.add_argument("--nprocs", type=int, default=1, help="data-parallel processes (one per GPU; gloo on a CPU)")
    parser.add_argument("--kernels", default="{}", help="JSON of trainer.kernels.KernelOptions; 'auto' for any omitted")
    for spec in dataclasses.fields(Hyperparameters):
        parser.add_argument(f"--{spec.name.replace('_', '-')}", dest=spec.name, help=f"default {spec.default}")
    args = vars(parser.parse_args())
    overrides = {f.name: args[f.name] for f in dataclasses.fields(Hyperparameters) if args[f.name] is not None}
    hyperparameters = TypeAdapter(Hyperparameters).validate_python(overrides, strict=False)
    kernels = TypeAdapter(KernelOptions).validate_json(args["kernels"])

    from trainer.distributed import launch  # torch loads only once the arguments are valid

    result = launch(
        RunSpec(
            base_model=args["base_model"],
            train_file=args["train_file"],
            output_dir=args["output_dir"],
            validation_file=args["validation_file"],
            hyperparameters=hyperparameters,
            kernels=kernels,
        ),
        args["nprocs"],
        on_progress=lambda p: print(json.dumps(dataclasses.asdict(p))),
        on_event=lambda line: print(json.dumps({"event": line})),
    )
    print(json.dumps({"adapter_dir": str(result.adapter_dir), "steps": result.steps, "final_loss": result.final_loss}))


if __name__ == "__main__":
    main()
