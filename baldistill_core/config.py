"""Typed configuration: one class per concern, the single source of every default.

The YAML run file, the CLI and the UI form are all built from these classes; a widget
reads its default and help text from ``Model.model_fields[name]`` rather than retyping it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TaskType = Literal["classification", "math", "multiple_choice", "qa"]
PolicyName = Literal["random", "naive", "adaptive", "duplicate"]
MethodName = Literal[
    "zero_shot_cot",
    "random_ft",
    "random_ft_cot",
    "duplicate_ft_cot",
    "balance_ft_cot",
    "active_ft_cot",
    "baldistill_n",
    "baldistill_a",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetSpec(_Strict):
    """Where a dataset lives and which fields play which role."""

    name: str = Field(description="Short name, unique in the workspace (letters, digits, - and _).")
    train_path: str = Field(description="Training pool: JSONL, CSV, Parquet, or a saved `datasets` folder.")
    test_path: str | None = Field(None, description="Optional test split in the same format.")
    input_field: str = Field("input", description="Column holding the model input (question, document).")
    answer_field: str = Field("answer", description="Column holding the gold final answer / label.")
    domain_field: str | None = Field(
        "domain", description="Column that partitions the data into domains; empty = derive from clusters."
    )
    id_field: str | None = Field("id", description="Column with a unique example id; empty = row numbers.")
    reference_field: str | None = Field(None, description="Optional human reference solution column.")
    task_type: TaskType = Field("classification", description="Decides the prompt template and the metric.")
    instruction: str | None = Field(None, description="Task instruction put before every input.")
    recorded_rationales: str | None = Field(None, description="JSONL of recorded teacher rationales (id, rationale).")
    recorded_synthetic: str | None = Field(None, description="JSONL of recorded synthetic tail examples.")
    readme: str | None = Field(None, description="Markdown file with the dataset's source and licence.")
    source: str | None = Field(None, description="One line: where the data comes from.")
    licence: str | None = Field(None, description="One line: the licence / terms of use.")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,63}", v or ""):
            raise ValueError(
                f"dataset name {v!r} is not allowed: use 1-64 letters, digits, '-' or '_', starting with a letter or digit"
            )
        return v


class TeacherConfig(_Strict):
    """How to reach the teacher. The API key itself is never a field: only the name of the variable."""

    backend: Literal["recorded", "openai", "local"] = Field(
        "recorded", description="recorded = replay bundled real outputs (offline, free); openai = any "
        "OpenAI-compatible endpoint; local = a local transformers model (low quality)."
    )
    model: str = Field("gpt-4o-mini", description="Model name sent to the endpoint (or local model path).")
    base_url: str | None = Field(None, description="Endpoint base URL, e.g. http://localhost:8000/v1; empty = OpenAI.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key (never stored).")
    concurrency: int = Field(16, ge=1, le=256, description="Requests in flight at once.")
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout in seconds.")
    max_retries: int = Field(4, ge=0, le=20, description="Retries on 429/5xx/timeouts, with exponential backoff.")
    retry_backoff_s: float = Field(
        0.5, ge=0, le=60, description="First retry delay in seconds; doubles each retry (with jitter). "
        "A Retry-After header from the server wins."
    )
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature for rationales.")
    synthesis_temperature: float = Field(0.8, ge=0, le=2, description="Sampling temperature for tail synthesis.")
    max_tokens: int = Field(512, ge=16, le=32768, description="Max tokens per teacher reply.")
    price_in_per_mtok: float | None = Field(
        0.15, ge=0, description="USD per million input tokens. A launch sets it from the price table; empty (null) = "
        "unknown: the ledger then counts the calls but gives them no cost.")
    price_out_per_mtok: float | None = Field(
        0.60, ge=0, description="USD per million output tokens (as price_in_per_mtok; null = unknown).")
    cost_cap_usd: float | None = Field(None, ge=0, description="Stop the run cleanly once this much is spent.")
    hard_cost_cap_usd: float | None = Field(
        None, ge=0, description="Refuse to launch a run whose ESTIMATED teacher cost is above this (UI, CLI and "
        "worker alike); empty = no hard cap."
    )
    verify_synthetic: bool = Field(True, description="Teacher re-solves each synthetic input blind; keep agreement.")
    mode: Literal["online", "batch"] = Field(
        "online", description="online = one request per call; batch = a stage's calls go as one batch file through "
        "the endpoint's files + batches API (openai backend; about half the price, results within the window)."
    )
    batch_price_factor: float = Field(
        0.5, ge=0, le=1, description="Batch price as a fraction of the per-call prices above (OpenAI, Anthropic and "
        "OpenRouter batches: 0.5)."
    )
    batch_poll_s: float = Field(30.0, gt=0, le=3600, description="Seconds between two status polls of a batch.")
    batch_window: str = Field("24h", description="completion_window sent with a batch (OpenAI accepts 24h).")

    @field_validator("api_key_env")
    @classmethod
    def _key_var_looks_like_a_key(cls, v: str) -> str:
        # The variable's value is sent to base_url: refuse names that would hand over other secrets
        # (a cloud credential, a database password) to an endpoint typed into a form.
        import re

        if not re.fullmatch(r"[A-Z][A-Z0-9_]*(API_KEY|_TOKEN)", v or ""):
            raise ValueError(
                f"api_key_env {v!r} is not an API-key variable name; use one ending in API_KEY or _TOKEN "
                f"(e.g. OPENAI_API_KEY, VLLM_API_KEY)"
            )
        return v


StudentPreset = Literal["cpu-demo", "paper-gpu", "test-tiny"]


class StudentConfig(_Strict):
    model: str = Field(
        "smollm2-135m", description="'smollm2-135m' (bundled, offline), a local path, or a Hugging Face id."
    )
    preset: StudentPreset = Field("cpu-demo", description="Hyperparameter preset; fields below override it.")
    quantization: Literal["auto", "4bit", "none"] = Field(
        "auto", description="auto = QLoRA 4-bit NF4 when CUDA + bitsandbytes are present, else plain LoRA."
    )
    lora_r: int = Field(8, ge=1, le=512, description="LoRA rank: the size of the low-rank update per adapted matrix.")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling numerator (the update is scaled by alpha / r).")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the LoRA branch during training.")
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"],
                                      description="Linear layers that get a LoRA adapter (module names).")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate of the LoRA parameters.")
    epochs: float = Field(8.0, gt=0, description="Passes over a stage's training data (fractions allowed).")
    batch_size: int = Field(16, ge=1, description="Training examples per device step.")
    grad_accum: int = Field(1, ge=1, description="Steps whose gradients add up before one optimizer step.")
    max_seq_len: int = Field(1024, ge=32, description="Prompt + completion tokens kept per training example.")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Share of the steps spent warming the learning rate up.")
    max_grad_norm: float = Field(0.3, gt=0, description="Gradient clipping norm.")
    bf16: bool = Field(False, description="bf16 mixed precision on a GPU (untested on hardware here).")
    cpu_bf16: bool = Field(
        True, description="bf16 autocast for training and generation on a CPU with native bf16 (AVX512-BF16 / "
        "AMX): 1.6-1.9x faster training; fp32 on CPUs without it. Off = fp32 everywhere."
    )
    cpu_bf16_ifd: bool = Field(
        False, description="Score IFD under the same bf16 autocast too (with cpu_bf16 on): 1.4-1.5x faster, but on 64 "
        "R52 prompts bf16 changed half the greedy rationales and kept 13 of fp32's top 16 picks, so IFD "
        "selection stays fp32 unless you turn this on."
    )
    fresh_adapter_per_stage: bool = Field(True, description="Paper: a fresh adapter each stage on cumulative data.")
    accelerate_num_processes: int = Field(1, ge=1, description=">1 launches training via `accelerate launch`.")
    max_new_tokens: int = Field(128, ge=8, description="Generation length for IFD rationales and evaluation.")
    max_input_tokens: int | None = Field(
        None, ge=8, description="Clip each input (story, problem) to its first N tokens, in training, IFD scoring "
        "and evaluation alike, so a long input leaves room for the rationale within max_seq_len; empty = no clip."
    )
    engine: Literal["hf", "vllm"] = Field(
        "hf", description="Greedy generation for IFD scoring and evaluation: hf = transformers (CPU or GPU); "
        "vllm = vLLM on a CUDA GPU with the stage's LoRA adapter (pip install .[gpu]; untested on hardware here)."
    )
    vllm_gpu_memory: float = Field(
        0.35, gt=0, lt=1, description="vLLM only: share of GPU memory its engine reserves (training shares the GPU)."
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data):
        if isinstance(data, dict):
            preset = data.get("preset", "cpu-demo")
            merged = dict(STUDENT_PRESETS.get(preset, {}))
            merged.update(data)
            return merged
        return data


# Paper setting (docs/method.md) for GPUs; a small fast one for this 2-core CPU; a tiny one for tests.
STUDENT_PRESETS: dict[str, dict] = {
    "paper-gpu": dict(
        lora_r=8, lora_alpha=16, lora_dropout=0.1, learning_rate=2e-4, epochs=8.0, batch_size=16,
        max_seq_len=1024, warmup_ratio=0.03, max_grad_norm=0.3, bf16=True, quantization="auto",
        max_new_tokens=256,
    ),
    "cpu-demo": dict(
        lora_r=8, lora_alpha=16, lora_dropout=0.05, learning_rate=1e-3, epochs=2.0, batch_size=8,
        max_seq_len=320, warmup_ratio=0.03, max_grad_norm=0.3, bf16=False, quantization="none",
        max_new_tokens=48, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    ),
    "test-tiny": dict(
        lora_r=4, lora_alpha=8, lora_dropout=0.0, learning_rate=5e-3, epochs=1.0, batch_size=4,
        max_seq_len=128, warmup_ratio=0.0, max_grad_norm=1.0, bf16=False, quantization="none",
        max_new_tokens=8, cpu_bf16=False,
    ),
}


class IFDConfig(_Strict):
    variant: Literal["ppl_ratio", "cherry"] = Field(
        "ppl_ratio", description="ppl_ratio = BalDistill (keep all); cherry = ratio of mean losses, drop > 1."
    )
    candidate_cap_per_domain: int = Field(64, ge=1, description="Random subsample of candidates scored per domain.")
    batch_size: int = Field(32, ge=1, description="Prompts per batch for IFD generation and scoring (bench/ifd.py: 32 was 1.17x faster than 16, 16 ~1.3x faster than 8 on 2 CPU cores).")


class EvalConfig(_Strict):
    live_per_domain: int = Field(5, ge=1, description="Stratified eval subset per domain for live curves.")
    final_per_domain: int | None = Field(
        20, ge=1, description="Cap per domain for the final test evaluation; empty = the full test set."
    )


class MapConfig(_Strict):
    """The embedding map: embedder, 2-D UMAP layout, HDBSCAN clusters (see baldistill_core.map.embed)."""

    embedder: Literal["minilm", "tfidf"] = Field(
        "minilm", description="minilm = all-MiniLM-L6-v2 sentence embeddings; tfidf = TF-IDF + SVD (no model; about a minute the first time while UMAP compiles)."
    )
    batch_size: int = Field(32, ge=1, description="Texts per forward pass of the sentence embedder.")
    tfidf_dims: int = Field(128, ge=2, description="SVD components of the TF-IDF embedder.")
    umap_neighbors: int = Field(15, ge=2, description="UMAP n_neighbors (local vs global structure).")
    umap_min_dist: float = Field(0.1, ge=0, le=1, description="UMAP min_dist (how tightly points pack).")
    random_state: int = Field(42, description="Seed of the UMAP layout (fixed so the map is reproducible).")
    min_cluster_size: int | None = Field(
        None, ge=2, description="HDBSCAN min_cluster_size; empty = about 1% of the points, at least 10 and at most "
                                "200 (so a large pool's tail topics are not merged into one cluster)."
    )
    cluster_sample: int = Field(
        30_000, ge=100, description="Above this many points HDBSCAN runs on a seeded sample of this size and every "
                                    "other point takes the cluster of its nearest sampled point (KD-tree)."
    )
    umap_fit_sample: int = Field(
        50_000, ge=100, description="Above this many points UMAP is fitted on a seeded sample of this size and "
                                    "the other points are placed with its transform."
    )
    max_points: int = Field(
        200_000, ge=1000, description="Points the Map page draws at most: above it, a stratified sample that keeps "
                                      "every point of small (tail) domains and samples the large ones."
    )
    keywords_per_cluster: int = Field(3, ge=1, le=10, description="Top TF-IDF terms used to name a cluster.")
    hover_chars: int = Field(200, ge=20, description="Characters of each text shown on hover.")


TrackerBackend = Literal["none", "trackio", "mlflow", "tensorboard", "wandb"]


class TrackingConfig(_Strict):
    """Report a run to an experiment tracker as well as to our own pages (baldistill_core.reports.tracking)."""

    backend: TrackerBackend = Field(
        "none", description="none = our pages only; trackio, mlflow, tensorboard or wandb: training loss through "
        "the trainer's report_to, per-domain metrics, teacher spend and the final table through the tracker. "
        "A tracker that fails only logs a warning."
    )
    project: str = Field("baldistill", description="Tracker project (MLflow experiment, W&B / trackio project).")
    run_name: str | None = Field(None, description="Name of the tracker run; empty = our run id.")
    uri: str | None = Field(
        None, description="Where the tracker writes: MLflow tracking URI (file path or http://host:port), "
        "TensorBoard / W&B / trackio folder; empty = the tracker's own variable (MLFLOW_TRACKING_URI, "
        "TRACKIO_DIR, WANDB_DIR) if set, else <workspace>/tracking/<backend>."
    )
    wandb_offline: bool = Field(
        True, description="W&B only: write the run locally (`wandb sync` it later) instead of uploading."
    )

    @field_validator("project", "run_name")
    @classmethod
    def _name_ok(cls, v: str | None) -> str | None:
        import re

        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}", v):
            raise ValueError(f"tracker name {v!r} is not allowed: use 1-128 letters, digits, '.', '-' or '_'")
        return v

    @field_validator("uri")
    @classmethod
    def _no_credentials(cls, v: str | None) -> str | None:
        # The URI is stored with the run and shown on the Training page: credentials belong in the
        # tracker's own environment variables (MLFLOW_TRACKING_PASSWORD, WANDB_API_KEY), never here.
        from urllib.parse import urlsplit

        if v and "://" in v and (urlsplit(v).password or urlsplit(v).username or urlsplit(v).query):
            raise ValueError("tracking uri must not hold credentials or a query string; set the tracker's own "
                             "environment variables (e.g. MLFLOW_TRACKING_USERNAME/PASSWORD) instead")
        return v or None


class RunConfig(_Strict):
    name: str = Field("run", description="A label for the run.")
    dataset: str = Field(description="Name of a dataset in the workspace.")
    method: MethodName = Field("baldistill_a", description="Which method of the paper's comparison to run.")
    budget: int = Field(200, ge=1, description="B: total examples the teacher may annotate or synthesize.")
    stages: int = Field(5, ge=1, le=50, description="K: number of stages; each spends B/K.")
    seed: int = Field(0, description="Every random pick depends only on (seed, stage, domain); training seeds on it too.")
    auto_approve: bool = Field(
        False, description="Use synthetic examples without human review (otherwise a stage waits for approval)."
    )
    confirm_above_minutes: float = Field(
        60.0, gt=0, description="Ask for a confirmation before launching a run estimated to take longer than this "
        "(or to cost more than teacher.cost_cap_usd)."
    )
    teacher: TeacherConfig = Field(default_factory=TeacherConfig, description="The teacher that annotates and synthesizes.")
    student: StudentConfig = Field(default_factory=StudentConfig, description="The student model and its training.")
    ifd: IFDConfig = Field(default_factory=IFDConfig, description="How head candidates are scored by IFD.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Live and final evaluation subsets.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="Experiment tracker (optional).")

    @model_validator(mode="after")
    def _budget_vs_stages(self):
        if self.stages > self.budget:
            raise ValueError(
                f"stages K={self.stages} is larger than the budget B={self.budget}: each stage needs at least "
                f"one example; lower K or raise the budget"
            )
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return cls.model_validate(data)
