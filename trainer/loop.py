"""The training loop: one function, :func:`train`, read top to bottom.

Size: over 400 lines on purpose. The loop is one function read top to bottom,
with its config and the helpers it calls.

It tokenizes the texts, builds the model (:func:`trainer.model.build_model`),
runs AdamW with warmup + cosine decay under an ``accelerate.Accelerator``
(bf16 autocast on CPUs that support it, DDP under ``accelerate launch``),
evaluates and checkpoints every so often, and writes::

    out_dir/model.safetensors   merged weights (adapters folded in), safetensors only
    out_dir/config.json         the HF model config
    out_dir/tokenizer.json      the HF tokenizers file
    out_dir/trainer_state.json  config, step, losses, tokens/s, timings

Checkpoints go to ``out_dir/checkpoint/`` (trainable weights, optimizer
moments, state; all safetensors/JSON, never pickle).  Calling :func:`train`
again on the same ``out_dir`` resumes from the last checkpoint and, because
the data order is a pure function of (seed, step), ends where an
uninterrupted run would.  Ctrl-C writes a checkpoint before stopping.

Throughput (measured by ``python -m benchmarks.train``, see docs/benchmarks.md, "Training"):
batches group examples of similar length and are padded on the right, so
with causal attention no real token ever sees a pad and the model is called
without an attention mask (the same numbers, and the fast causal kernel);
AdamW uses its fused kernel; ``compile=True`` compiles each decoder layer
with ``torch.compile`` (one graph reused by every layer, shapes dynamic).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainer.config import TrainConfig
from trainer.errors import TrainerError

__all__ = ["TrainConfig", "TrainResult", "lr_at", "read_result", "train"]

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "trainer_state.json"
#: Names the base a folder of LoRA adapters belongs to (``{"base": name or path}``).
STUDENT_BASE_FILE = "student_base.json"


@dataclass
class TrainResult:
    """What :func:`train` measured (also written to ``trainer_state.json``)."""

    out_dir: Path
    step: int
    total_steps: int
    train_loss: float | None
    eval_loss: float | None
    tokens_per_s: float
    train_seconds: float
    completed: bool
    history: list[dict[str, float]] = field(default_factory=list)


def lr_at(step: int, total: int, cfg: TrainConfig, *, time_fraction: float = 0.0) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``lr * min_lr_ratio`` at ``total``.

    With a time limit, ``time_fraction`` (training time used / limit) also
    advances the decay, so a run cut short by the clock still ends at a low
    learning rate instead of stopping mid-schedule.

    >>> cfg = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.0)
    >>> lr_at(4, 100, cfg), lr_at(10, 100, cfg), round(lr_at(100, 100, cfg), 6)
    (0.5, 1.0, 0.0)
    >>> round(lr_at(10, 100, cfg, time_fraction=1.0), 6)
    0.0
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, total - cfg.warmup_steps)
    progress = min(1.0, max((step - cfg.warmup_steps) / span, time_fraction))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


# --------------------------------------------------------------------- data


def _encode_all(tok: Any, texts: Sequence[str | tuple[str, str]], max_len: int, fmt: Any) -> tuple[list[np.ndarray], list[int]]:
    """Token ids of every text, and how many leading ids of each are prompt (not learnt).

    A text is a string (learnt whole: ``[BOS] text EOS``) or a ``(prompt,
    completion)`` pair, laid out by the base's prompt format
    (:class:`generator.local.prompting.PromptFormat`: its chat template for an
    instruction-tuned base) with the loss on the completion only.
    """
    out, prompt_lens, cut = [], [], 0
    plain = [t for t in texts if isinstance(t, str)]
    encoded = iter(tok.encode_batch(plain, add_special_tokens=False)) if plain else iter(())
    for text in texts:
        if isinstance(text, str):
            ids = ([fmt.bos_id] if fmt.add_bos and fmt.bos_id is not None else []) + [*next(encoded).ids, fmt.eos_id]
            n_prompt = 0
        else:
            ids, n_prompt = fmt.example_ids(tok, text[0], text[1])
        if len(ids) > max_len:
            cut += 1
            ids = ids[:max_len]
        out.append(np.asarray(ids, dtype=np.int64))
        prompt_lens.append(min(n_prompt, len(ids)))
    if cut:
        log.warning("%d of %d texts were longer than max_len=%d and were cut", cut, len(texts), max_len)
    return out, prompt_lens


def _epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Batches of similar-length examples (less padding), in a seeded order per epoch."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    chunk = batch_size * 32
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class _BatchStream:
    """Micro-batch ``k`` of the run, a pure function of (seed, k): resuming needs no saved state."""

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int) -> None:
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.per_epoch = math.ceil(len(lengths) / batch_size)
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def __getitem__(self, k: int) -> np.ndarray:
        epoch, offset = divmod(k, self.per_epoch)
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, _epoch_batches(self.lengths, self.batch_size, self.seed, epoch))
        return self._cache[1][offset]


def _collate(seqs: list[np.ndarray], pad_id: int, prompt_lens: Sequence[int] | None = None) -> dict[str, Any]:
    """Right-padded ``input_ids``, ``labels`` (-100 on padding and prompt) and ``attention_mask`` (1 = real token)."""
    import torch

    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    learn = np.zeros((len(seqs), width), dtype=bool)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
        learn[i, (prompt_lens[i] if prompt_lens is not None else 0) : len(s)] = True
    labels = np.where(learn, ids, -100)
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
            "labels": torch.from_numpy(labels)}


def _model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """What the model is called with: no attention mask.

    Padding is on the right and attention is causal, so a real token only
    attends to earlier positions, which are all real; positions count from 0
    in every row either way; pads carry label -100.  The mask would change no
    real token's output or the loss, but it makes attention build a 4-D mask
    and leave the fused causal kernel.  ``attention_mask`` stays in the batch
    to count real tokens.
    """
    return {"input_ids": batch["input_ids"], "labels": batch["labels"]}


# ------------------------------------------------------------------ helpers


def _bf16_supported() -> bool:
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # pragma: no cover - older torch builds
        return False


def _warn_if_threads_spin() -> None:
    """Say so when torch's OpenMP threads will busy-wait on a machine other jobs already keep busy.

    With the default (active) wait policy a thread that reaches a barrier
    spins, burning the CPU its descheduled sibling needs; on the shared
    2-core box this made the same training 4x slower at a load average of 7.
    The policy is read once when OpenMP starts, so only the environment of
    the process can change it.
    """
    import torch

    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE" or torch.get_num_threads() < 2:
        return
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - platforms without a load average
        return
    if load >= (os.cpu_count() or 1):
        log.warning("load average %.1f on %d CPUs and OMP_WAIT_POLICY is not PASSIVE: torch's %d threads "
                    "spin-wait for each other and train several times slower; start Python with "
                    "OMP_WAIT_POLICY=PASSIVE (or set torch_threads: 1)", load, os.cpu_count() or 1,
                    torch.get_num_threads())


def _trainable_state(model: Any) -> dict[str, Any]:
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def _save_checkpoint(ckpt: Path, model: Any, optimizer: Any, tok: Any, state: dict[str, Any]) -> None:
    """Write a checkpoint next to the old one, then swap, so a crash never leaves half of one."""
    import torch
    from safetensors.torch import save_file

    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_trainable_state(model), str(tmp / "model.safetensors"))
    moments: dict[str, torch.Tensor] = {}
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        st = optimizer.state.get(p)
        if not st:
            continue
        for key, value in st.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            moments[f"{i}.{key}"] = t.detach().contiguous().cpu()
    save_file(moments, str(tmp / "optimizer.safetensors"))
    tok.save(str(tmp / "tokenizer.json"))
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
    old = ckpt.with_name(ckpt.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if ckpt.exists():
        os.replace(ckpt, old)
    os.replace(tmp, ckpt)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(ckpt: Path, model: Any, optimizer: Any) -> None:
    from safetensors.torch import load_file

    weights = load_file(str(ckpt / "model.safetensors"))
    named = dict(model.named_parameters())
    missing = [n for n, p in named.items() if p.requires_grad and n not in weights]
    if missing:
        raise TrainerError(f"checkpoint {ckpt} lacks {len(missing)} weights (e.g. {missing[0]}); "
                           "delete it to start over")
    for name, value in weights.items():
        named[name].data.copy_(value)
    moments = load_file(str(ckpt / "optimizer.safetensors"))
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for key, value in moments.items():
        idx, name = key.split(".", 1)
        optimizer.state[params[int(idx)]][name] = value.to(params[int(idx)].device)


def _optimizer(model: Any, cfg: TrainConfig) -> Any:
    import torch

    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.fused_optimizer:
        try:
            return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
        except (RuntimeError, ValueError) as exc:  # a device or dtype without the fused kernel
            log.info("fused AdamW unavailable (%s); using the foreach implementation", exc)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)


def _decoder_layers(model: Any) -> list[Any]:
    """The repeated transformer blocks (``*DecoderLayer``) of an HF causal LM, peft-wrapped or not."""
    return [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]


def _compile_layers(model: Any) -> list[Any]:
    """Compile each decoder layer's forward in place (state-dict names unchanged); returns the layers.

    All layers share one code object, so dynamo compiles one graph (per
    grad mode) and reuses it; ``dynamic=True`` keeps the varying batch width
    from recompiling.  Compiling the blocks rather than the whole model
    costs a fraction of the compile time for the same step time (measured).
    """
    import torch

    layers = _decoder_layers(model)
    if not layers:
        log.warning("compile=True: no *DecoderLayer modules in %s; training uncompiled", type(model).__name__)
    elif not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
        log.warning("compile=True needs a C++ compiler (g++/clang++) for torch.compile on the CPU and none is on "
                    "PATH; training uncompiled (install one, or set compile: false to silence this)")
        return []
    for layer in layers:
        layer.forward = torch.compile(layer.forward, dynamic=True)
    return layers


@contextlib.contextmanager
def _uncompiled(layers: list[Any]) -> Any:
    """Run the layers' eager forward inside the block (evaluation: no second graph for no-grad)."""
    compiled = [layer.__dict__.pop("forward", None) for layer in layers]
    try:
        yield
    finally:
        for layer, fwd in zip(layers, compiled, strict=True):
            if fwd is not None:
                layer.forward = fwd


def _renamed(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config under the field names the loop's config had before it became the preset's."""
    out = dict(saved)
    for old, new in (("preset", "model_preset"), ("max_seq_len", "max_len")):
        if old in out:
            out[new] = out.pop(old)
    if "time_limit_s" in out:
        limit = out.pop("time_limit_s")
        out["max_minutes"] = None if limit is None else limit / 60.0
    return out


def _same_config(saved: dict[str, Any] | None, cfg: TrainConfig) -> bool:
    """Whether a saved run's config is ``cfg``; fields it predates count as their defaults."""
    if saved is None:
        return False
    defaults = TrainConfig().to_dict()
    current = cfg.to_dict()
    saved = _renamed(saved)
    return {**{k: defaults[k] for k in current if k not in saved}, **saved} == current


def _final_model(model: Any, cfg: TrainConfig, vocab_size: int) -> Any:
    """The plain causal LM to save: adapters merged; QLoRA merged into a full-precision base."""
    if not (cfg.lora or cfg.qlora):
        return model
    if not cfg.qlora:
        return model.merge_and_unload()
    from trainer.model import build_model

    adapters = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    full = build_model(cfg.base, cfg.model_preset, vocab_size=vocab_size, lora=True, lora_r=cfg.lora_r,
                       lora_alpha=cfg.lora_alpha, lora_layers=cfg.lora_layers, seed=cfg.seed)
    named = dict(full.named_parameters())
    for name, value in adapters.items():
        named[name].data.copy_(value.float())
    return full.merge_and_unload()


def _tokenizer_for(cfg: TrainConfig, texts: Sequence[str | tuple[str, str]]) -> Any:
    from trainer.tokenizer import load_tokenizer, train_tokenizer

    if cfg.base == "micro":
        texts = [t if isinstance(t, str) else t[0] + t[1] for t in texts]
        return train_tokenizer(texts, kind=cfg.tokenizer, vocab_size=cfg.vocab_size)  # type: ignore[arg-type]
    from trainer.model import resolve_base

    return load_tokenizer(resolve_base(cfg.base) / "tokenizer.json")


def _prompt_format(cfg: TrainConfig, tok: Any) -> Any:
    """Special ids and prompt layout: the base's own (config.json, tokenizer_config.json, chat template).

    A micro student's tokenizer is made here with ``<pad>``/``<s>``/``</s>`` at
    fixed ids (:mod:`trainer.tokenizer`), and its config says the same.
    """
    from generator.errors import ModelLoadError
    from generator.local.prompting import PromptFormat
    from trainer.tokenizer import BOS, EOS, PAD

    if cfg.base == "micro":
        return PromptFormat.plain(bos_id=tok.token_to_id(BOS), eos_id=tok.token_to_id(EOS), pad_id=tok.token_to_id(PAD))
    from trainer.model import resolve_base

    try:
        return PromptFormat.from_dir(resolve_base(cfg.base), tok)
    except ModelLoadError as exc:
        raise TrainerError(str(exc)) from None


#: Files of a pretrained base that describe its tokenizer and prompt; copied next to the trained weights.
BASE_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                        "generation_config.json")


def _save_adapters(model: Any, cfg: TrainConfig, out: Path) -> None:
    """A LoRA run on a pretrained base keeps only its adapters (megabytes) and names the base.

    The base's config and tokenizer files are copied beside them, so the
    folder describes its own prompt format; loaders merge the adapters into
    the base (``generator.local.student``).
    """
    from trainer.model import resolve_base

    base_dir = resolve_base(cfg.base)
    model.save_pretrained(str(out), safe_serialization=True)
    adapter_cfg = out / "adapter_config.json"
    data = json.loads(adapter_cfg.read_text())
    data["base_model_name_or_path"] = str(base_dir)
    adapter_cfg.write_text(json.dumps(data, indent=2))
    for name in ("config.json", *BASE_TOKENIZER_FILES):
        if (base_dir / name).is_file():
            shutil.copy2(base_dir / name, out / name)
    from generator.local.bases import BASE_INFO, is_wheel_base

    # a packaged base by name (its folder is found or rebuilt in any data dir), any other by its folder
    base_ref = {"base": cfg.base if is_wheel_base(cfg.base) else str(base_dir)}
    if (base_dir / BASE_INFO).is_file():
        base_ref["source"] = json.loads((base_dir / BASE_INFO).read_text())
    (out / STUDENT_BASE_FILE).write_text(json.dumps(base_ref, indent=2))


# --------------------------------------------------------------------- train


def train(
    config: TrainConfig,
    train_texts: Sequence[str | tuple[str, str]],
    eval_texts: Sequence[str | tuple[str, str]],
    out_dir: str | Path,
    *,
    resume: bool = True,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> Path:
    """Train a student on ``train_texts`` and write it to ``out_dir``; returns ``out_dir``.

    ``on_step(step, loss)`` is called after each optimizer step (tests use it
    to interrupt a run).  What the run measured is in ``trainer_state.json``;
    :func:`read_result` returns it as a :class:`TrainResult`.
    """
    import torch

    cfg = config
    if not train_texts:
        raise TrainerError("train(): no training texts")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT_DIR
    threads_before = torch.get_num_threads()
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    _warn_if_threads_spin()
    try:
        return _train(cfg, train_texts, eval_texts, out, ckpt, resume=resume, progress=progress, on_step=on_step)
    finally:
        torch.set_num_threads(threads_before)


def _train(cfg: TrainConfig, train_texts: Sequence[str | tuple[str, str]], eval_texts: Sequence[str | tuple[str, str]], out: Path, ckpt: Path, *,
           resume: bool, progress: bool, on_step: Callable[[int, float], None] | None) -> Path:
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from tqdm.auto import tqdm

    from trainer.model import build_model
    from trainer.tokenizer import load_tokenizer

    done_state = out / STATE_FILE
    weights = [out / "model.safetensors", out / "adapter_model.safetensors"]
    if resume and done_state.is_file() and any(w.is_file() for w in weights):
        state = json.loads(done_state.read_text())
        if state.get("completed") and _same_config(state.get("config"), cfg):
            log.info("%s already holds a completed run with this config; nothing to do", out)
            return out

    resuming = resume and (ckpt / STATE_FILE).is_file()
    tok = load_tokenizer(ckpt / "tokenizer.json") if resuming else _tokenizer_for(cfg, train_texts)
    fmt = _prompt_format(cfg, tok)
    pad_id = fmt.pad_id

    bf16 = _bf16_supported() if cfg.bf16 is None else cfg.bf16
    # Accelerate keeps one process-wide state; a second train() in the same process
    # (tests, the pipeline's retrain) may want another precision.  The distributed
    # part (PartialState) is kept, so `accelerate launch` still works.
    AcceleratorState._reset_state()
    accelerator = Accelerator(mixed_precision="bf16" if bf16 else "no")
    is_main = accelerator.is_main_process

    train_ids, train_plen = _encode_all(tok, train_texts, cfg.max_len, fmt)
    eval_ids, eval_plen = _encode_all(tok, eval_texts, cfg.max_len, fmt) if eval_texts else ([], [])
    lengths = np.array([len(s) for s in train_ids])
    stream = _BatchStream(lengths, cfg.batch_size, cfg.seed)
    world = accelerator.num_processes
    micro_per_step = cfg.grad_accum * world
    total_steps = cfg.steps or max(1, math.ceil(cfg.epochs * stream.per_epoch / micro_per_step))

    model = build_model(cfg.base, cfg.model_preset, vocab_size=tok.get_vocab_size(), lora=cfg.lora, qlora=cfg.qlora,
                        lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_layers=cfg.lora_layers, seed=cfg.seed)
    model.config.use_cache = False
    optimizer = _optimizer(model, cfg)
    state: dict[str, Any] = {"config": cfg.to_dict(), "step": 0, "tokens": 0, "train_seconds": 0.0,
                             "history": [], "total_steps": total_steps, "completed": False}
    if resuming:
        saved = json.loads((ckpt / STATE_FILE).read_text())
        if not _same_config(saved.get("config"), cfg):
            raise TrainerError(f"checkpoint in {ckpt} was made with another config; "
                               "train with resume=False (or delete the folder) to start over")
        _load_checkpoint(ckpt, model, optimizer)
        state = {**saved, "config": cfg.to_dict()}
        log.info("resuming from step %d of %d", state["step"], total_steps)
    if cfg.compile and cfg.qlora:
        log.info("compile=True is ignored with qlora: bitsandbytes' 4-bit layers do not compile on the CPU")
    compiled = _compile_layers(model) if cfg.compile and not cfg.qlora else []
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()

    def evaluate() -> float | None:
        if not eval_ids:
            return None
        model.eval()
        losses = []
        with torch.no_grad(), _uncompiled(compiled):
            for i in range(min(cfg.eval_batches, math.ceil(len(eval_ids) / cfg.batch_size))):
                lo, hi = i * cfg.batch_size, (i + 1) * cfg.batch_size
                batch = {k: v.to(accelerator.device)
                         for k, v in _collate(eval_ids[lo:hi], pad_id, eval_plen[lo:hi]).items()}
                with accelerator.autocast():
                    losses.append(float(model(**_model_inputs(batch)).loss))
        model.train()
        return float(np.mean(losses))

    def checkpoint() -> None:
        accelerator.wait_for_everyone()
        if is_main:
            _save_checkpoint(ckpt, accelerator.unwrap_model(model), optimizer, tok, state)

    bar = tqdm(total=total_steps, initial=state["step"], disable=not (progress and is_main),
               desc="train", unit="step", dynamic_ncols=True)
    started = time.monotonic()
    base_seconds, base_tokens = state["train_seconds"], state["tokens"]
    last_loss: float | None = None
    try:
        while state["step"] < total_steps:
            step_started = time.monotonic()
            step = state["step"]
            time_fraction = state["train_seconds"] / cfg.time_limit_s if cfg.time_limit_s else 0.0
            lr = lr_at(step, total_steps, cfg, time_fraction=time_fraction)
            for g in optimizer.param_groups:
                g["lr"] = lr
            step_loss, step_tokens = 0.0, 0
            for micro in range(cfg.grad_accum):
                k = (step * cfg.grad_accum + micro) * world + accelerator.process_index
                idx = stream[k]
                batch = _collate([train_ids[i] for i in idx], pad_id, [train_plen[i] for i in idx])
                batch = {key: v.to(accelerator.device) for key, v in batch.items()}
                last_micro = micro == cfg.grad_accum - 1
                ctx = accelerator.no_sync(model) if not last_micro else contextlib.nullcontext()
                with ctx, accelerator.autocast():
                    loss = model(**_model_inputs(batch)).loss / cfg.grad_accum
                    accelerator.backward(loss)
                step_loss += float(loss.detach())
                step_tokens += int(batch["attention_mask"].sum())
            if cfg.grad_clip:
                accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

            state["step"] = step + 1
            state["tokens"] += step_tokens * world
            elapsed = time.monotonic() - started
            state["train_seconds"] = base_seconds + elapsed
            tok_s = (state["tokens"] - base_tokens) / max(elapsed, 1e-9)
            last_loss = step_loss
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{tok_s:,.0f}")
            record: dict[str, float] = {"step": state["step"], "loss": round(step_loss, 5), "lr": lr,
                                        "tokens": step_tokens * world,
                                        "seconds": round(time.monotonic() - step_started, 4)}
            if cfg.eval_every and state["step"] % cfg.eval_every == 0:
                ev = evaluate()
                if ev is not None:
                    record["eval_loss"] = round(ev, 5)
                    log.info("step %d: loss %.4f, eval loss %.4f", state["step"], step_loss, ev)
            state["history"].append(record)
            if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0:
                checkpoint()
            if on_step is not None:
                on_step(state["step"], step_loss)
            if cfg.time_limit_s is not None and state["train_seconds"] >= cfg.time_limit_s:
                log.warning("time limit %.0f s reached at step %d of %d", cfg.time_limit_s, state["step"], total_steps)
                break
    except KeyboardInterrupt:
        bar.close()
        checkpoint()
        log.warning("interrupted at step %d; checkpoint written, train again to resume", state["step"])
        raise
    bar.close()

    tokens_per_s = (state["tokens"] - base_tokens) / max(time.monotonic() - started, 1e-9)
    for layer in compiled:  # the model leaves training eager
        layer.__dict__.pop("forward", None)
    eval_loss = evaluate()
    state.update({
        "completed": state["step"] >= total_steps,
        "train_loss": last_loss,
        "eval_loss": eval_loss,
        "tokens_per_s": tokens_per_s,
        "bf16": bf16,
        "world_size": world,
    })
    accelerator.wait_for_everyone()
    if is_main:
        if not state["completed"]:
            checkpoint()
        if (cfg.lora or cfg.qlora) and cfg.base != "micro":
            _save_adapters(accelerator.unwrap_model(model), cfg, out)
        else:
            final = _final_model(accelerator.unwrap_model(model), cfg, tok.get_vocab_size())
            final.config.use_cache = True
            final.save_pretrained(str(out), safe_serialization=True)
            tok.save(str(out / "tokenizer.json"))
            if cfg.base != "micro":  # the base's prompt format travels with its weights
                from trainer.model import resolve_base

                base_dir = resolve_base(cfg.base)
                for name in BASE_TOKENIZER_FILES[1:]:
                    if (base_dir / name).is_file():
                        shutil.copy2(base_dir / name, out / name)
        (out / STATE_FILE).write_text(json.dumps(state, indent=2))
        if state["completed"]:
            shutil.rmtree(ckpt, ignore_errors=True)
    return out


def read_result(out_dir: str | Path) -> TrainResult:
    """The :class:`TrainResult` of the run written to ``out_dir``."""
    out = Path(out_dir)
    try:
        state = json.loads((out / STATE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise TrainerError(f"no readable {STATE_FILE} in {out}: {exc}") from exc
    return _result_from_state(out, state)


def _result_from_state(out: Path, state: dict[str, Any]) -> TrainResult:
    return TrainResult(
        out_dir=out,
        step=state["step"],
        total_steps=state["total_steps"],
        train_loss=state.get("train_loss"),
        eval_loss=state.get("eval_loss"),
        tokens_per_s=float(state.get("tokens_per_s", 0.0)),
        train_seconds=float(state.get("train_seconds", 0.0)),
        completed=bool(state.get("completed")),
        history=state.get("history", []),
    )
