"""One QLoRA/LoRA fine-tune, top to bottom: load, tokenize, train (resumably), evaluate, save."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import cast

import torch
from peft import LoraConfig, PeftModel, prepare_model_for_kbit_training
from transformers import PreTrainedTokenizerBase, set_seed
from transformers.trainer_callback import PrinterCallback
from trl.trainer.sft_config import SFTConfig
from trl.trainer.sft_trainer import SFTTrainer

from trainer.attention import AttentionPlan, choose_attention
from trainer.auto_hyperparameters import concrete, resolve_hyperparameters
from trainer.batches import Collator, collator_for
from trainer.checkpoints import CheckpointCallback, checkpoints_dir, latest_checkpoint
from trainer.config import Hyperparameters, Quantization, RunSpec
from trainer.device_profile import profile_device
from trainer.errors import DeviceError, OutOfMemory, TrainingStopped
from trainer.kernels import KernelPlan, apply_liger_layer_kernels, choose_kernels, liger_model_types
from trainer.merge import merge_adapter
from trainer.model_card import render_model_card
from trainer.model_loading import load_model, load_tokenizer, pick_device
from trainer.progress import ProgressCallback, ReportingCallback
from trainer.results import RunEnvironment, TrainResult
from trainer.run_control import CheckpointReportingCallback, StopAndCheckpointCallback, StopCheck
from trainer.samples import generate_samples
from trainer.training_data import EventCallback, TrainingData, load_training_data

log = logging.getLogger(__name__)

OOM_HINT = "lower batch_size (raise gradient_accumulation_steps to compensate), max_seq_length or lora_r"


# What a failing device raises, by type: CUDA runtime errors (torch >= 2.8) and NCCL/Gloo backend errors.
DEVICE_FAILURES: tuple[type[BaseException], ...] = (torch.AcceleratorError, torch.distributed.DistBackendError)


@contextmanager
def device_errors_as_failures(doing: str) -> Iterator[None]:
    """Translate torch's device exceptions into the trainer's typed failures, at the trainer's boundary."""
    try:
        yield
    except torch.OutOfMemoryError as exc:  # before DEVICE_FAILURES: the job's size, not the machine, is at fault
        raise OutOfMemory(f"out of GPU memory while {doing}; {OOM_HINT}") from exc
    except DEVICE_FAILURES as exc:
        raise DeviceError(f"the GPU failed while {doing}: {exc}") from exc


def build_sft_config(
    spec: RunSpec, hp: Hyperparameters, environment: RunEnvironment, kernels: KernelPlan, has_eval: bool
) -> SFTConfig:
    """The HF/TRL arguments for ``hp``, which must be resolved (no "auto"), and for the kernel plan."""
    on_cuda = environment.device == "cuda"
    workers = kernels.dataloader_workers
    every = spec.checkpoint_every_steps
    return SFTConfig(
        output_dir=str(checkpoints_dir(spec.output_dir)),
        num_train_epochs=concrete(hp.n_epochs),
        per_device_train_batch_size=concrete(hp.batch_size),
        per_device_eval_batch_size=concrete(hp.batch_size),
        gradient_accumulation_steps=concrete(hp.gradient_accumulation_steps),
        learning_rate=concrete(hp.learning_rate),
        lr_scheduler_type="cosine",
        warmup_steps=hp.warmup_ratio,  # a float below 1 is read as a ratio of total steps
        weight_decay=hp.weight_decay,
        max_grad_norm=hp.max_grad_norm,
        seed=hp.seed,
        data_seed=hp.seed,
        max_length=hp.max_seq_length,
        # trainer.batches has already labelled, truncated and packed the rows, and builds the micro-batches.
        packing=False,
        padding_free=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        logging_steps=spec.logging_steps,
        eval_strategy=("steps" if hp.eval_every_steps else "epoch") if has_eval else "no",
        eval_steps=hp.eval_every_steps,
        # The Trainer's own checkpoints (adapter, optimizer, scheduler, RNG, trainer state) give exact resumption;
        # StopAndCheckpointCallback adds epoch ends and stops.
        save_strategy="steps" if every else "epoch",
        save_steps=every or 500,
        save_total_limit=spec.keep_checkpoints,
        report_to=[],
        include_num_input_tokens_seen="non_padding",
        bf16=environment.dtype == "bfloat16",
        fp16=environment.dtype == "float16",
        # paged 8-bit AdamW keeps optimizer state small on GPU; bitsandbytes' paged optimizers need CUDA.
        optim="paged_adamw_8bit" if on_cuda else "adamw_torch",
        activation_checkpointing=kernels.checkpoint_every > 0,
        activation_checkpointing_kwargs=(
            {"every_n_layers": kernels.checkpoint_every, "offload": kernels.checkpoint_offload}
            if kernels.checkpoint_every
            else None
        ),
        torch_compile=kernels.compile,
        dataloader_pin_memory=on_cuda,
        dataloader_num_workers=workers,
        # Workers live for the whole run (not one start per epoch and evaluation), two batches ahead each.
        dataloader_persistent_workers=workers > 0,
        dataloader_prefetch_factor=2 if workers else None,
        disable_tqdm=True,
        use_cpu=not on_cuda,
    )


def _lora_config(hp: Hyperparameters) -> LoraConfig:
    return LoraConfig(
        r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules=hp.target_modules,
        task_type="CAUSAL_LM",
    )


def keep_adapter_weights_in_fp32(model: torch.nn.Module) -> None:
    """Undo TRL's cast of QLoRA adapter weights to bf16.

    When the Trainer reloads a checkpoint, peft upcasts the adapter to fp32 (its ``autocast_adapter_dtype``
    default), so a resumed run would train in another precision than an uninterrupted one. Keeping the
    adapter in fp32 from the start makes resumption exact; under bf16/fp16 autocast the matmuls still run in
    16-bit, and the adapter is well under 1% of the parameters, so the memory cost is small.
    """
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


def _collator(attention: AttentionPlan, hp: Hyperparameters, tokenizer: PreTrainedTokenizerBase) -> Collator:
    pad_token_id = tokenizer.pad_token_id
    assert isinstance(pad_token_id, int), "load_tokenizer sets a pad token"
    return collator_for(attention.layout, hp.packing, pad_token_id)


def _write_model_card(spec: RunSpec, adapter_dir: Path, data: TrainingData, result: TrainResult) -> None:
    card = render_model_card(
        base_model=spec.base_model_name or spec.base_model,
        data_format=data.format.value,
        train_examples=len(data.train_examples),
        eval_examples=len(data.eval_examples),
        train_tokens=data.train_tokens,
        hyperparameters=result.hyperparameters,
        final_loss=result.final_loss,
        final_eval_loss=result.final_eval_loss,
        decisions=result.decisions,
    )
    (adapter_dir / "README.md").write_text(card, encoding="utf-8")


def name_base_model(adapter_dir: Path, base_model: str) -> None:
    """peft records the path the model was loaded from; record the name it is known by instead."""
    config_path = adapter_dir / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = str(base_model)  # a local model may be given as a Path
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")


def train(
    spec: RunSpec,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    on_event: EventCallback | None = None,
    on_checkpoint: CheckpointCallback | None = None,
) -> TrainResult:
    """Fine-tune ``spec.base_model`` on ``spec.train_file`` and save the adapter.

    Resumes from the latest checkpoint in ``spec.output_dir/checkpoints`` if there is one. When
    ``should_stop()`` turns true, saves a checkpoint at that step and raises ``TrainingStopped``.
    ``on_event`` hears each "auto" decision and each notable warning, as one readable line.
    ``on_checkpoint`` hears of each saved checkpoint and of which ones retention kept.
    """
    decisions: list[str] = []

    def event(line: str) -> None:
        decisions.append(line)
        log.info(line)
        if on_event is not None:
            on_event(line)

    set_seed(spec.hyperparameters.seed)
    tokenizer = load_tokenizer(spec.base_model, spec.trust_remote_code)
    data = load_training_data(
        spec.train_file, spec.validation_file, tokenizer, spec.hyperparameters, event, spec.tokenized_cache_dir
    )
    hp = spec.hyperparameters
    attention = choose_attention(pick_device()[0], spec.attention)
    if hp.packing:
        event(attention.decision)
    with device_errors_as_failures("loading the model"):
        model, environment = load_model(
            spec.base_model, hp.quantization, spec.trust_remote_code, attention.kernel.value
        )
    on_cuda = environment.device == "cuda"
    liger_types = liger_model_types() if on_cuda else frozenset()
    kernels = choose_kernels(environment.device, spec.kernels, str(model.config.model_type), liger_types)
    event(kernels.decision)
    hp, auto_decisions = resolve_hyperparameters(hp, data.size, profile_device(model, environment.device, kernels))
    for line in auto_decisions:
        event(line)
    if hp.quantization is Quantization.NF4:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=kernels.checkpoint_every > 0)
    if kernels.liger:
        apply_liger_layer_kernels(model)
    reporter = ReportingCallback(on_progress)
    control = StopAndCheckpointCallback(should_stop)
    trainer = SFTTrainer(
        model=model,
        args=build_sft_config(spec, hp, environment, kernels, data.eval is not None),
        train_dataset=data.train,
        eval_dataset=data.eval,
        data_collator=_collator(attention, hp, tokenizer),
        processing_class=tokenizer,
        peft_config=_lora_config(hp),
        callbacks=[reporter, control, CheckpointReportingCallback(spec.output_dir, on_checkpoint)],
    )
    trainer.remove_callback(PrinterCallback)  # progress goes to the caller, not to stdout
    keep_adapter_weights_in_fp32(cast(PeftModel, trainer.model))
    resume_from = latest_checkpoint(spec.output_dir)
    if resume_from is not None:
        event(f"resuming from {resume_from.name}")
    with device_errors_as_failures("training"):
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if control.stopped:
        stopped_at = checkpoints_dir(spec.output_dir) / f"checkpoint-{trainer.state.global_step}"
        raise TrainingStopped(
            f"training was stopped at step {trainer.state.global_step}; it resumes from {stopped_at.name}",
            checkpoint_dir=stopped_at if stopped_at.is_dir() else latest_checkpoint(spec.output_dir),
        )
    if data.eval is not None and reporter.last_eval_step != trainer.state.global_step:
        with device_errors_as_failures("evaluating"):
            trainer.evaluate()  # the final model's eval loss, reported like the others
    adapter_dir = spec.output_dir / "adapter"
    # Under data parallelism (trainer.distributed) every rank holds the same adapter; rank 0 alone writes.
    writes_outputs = trainer.is_world_process_zero()
    samples: list[dict[str, str | None]] = []
    if writes_outputs:
        cast(PeftModel, trainer.model).save_pretrained(str(adapter_dir))
        name_base_model(adapter_dir, spec.base_model_name or spec.base_model)
        tokenizer.save_pretrained(adapter_dir)
        with device_errors_as_failures("generating samples"):
            prompts_from = data.eval_examples or data.train_examples
            model_to_sample = cast(PeftModel, trainer.model)
            samples = generate_samples(model_to_sample, tokenizer, prompts_from, spec.sample_generations)
    result = TrainResult(
        adapter_dir=adapter_dir,
        steps=trainer.state.global_step,
        trained_tokens=int(trainer.state.num_input_tokens_seen),
        final_loss=reporter.last_loss,
        environment=environment,
        hyperparameters=hp,
        decisions=decisions,
        final_eval_loss=reporter.last_eval_loss,
        final_eval_token_accuracy=reporter.last_eval_token_accuracy,
        last_checkpoint=latest_checkpoint(spec.output_dir),
        samples=samples,
    )
    if not writes_outputs:
        return result
    _write_model_card(spec, adapter_dir, data, result)
    if not hp.merge_adapter:
        return result
    del trainer, model  # free the training copy before loading a 16-bit one
    with device_errors_as_failures("merging the adapter"):
        merged_dir = merge_adapter(
            spec.base_model, adapter_dir, spec.output_dir / "merged", tokenizer, spec.trust_remote_code
        )
    return replace(result, merged_dir=merged_dir)
