"""The ``text2token`` command: parses arguments and calls the modules; errors are one line."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from . import tables
from .errors import Text2TokenError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Text2Token: unsupervised text embeddings from decoder LLMs by token target prediction.")
console = Console(stderr=True)
out = Console()
_state = {"debug": False}
PRECISION = typer.Option("auto", "--precision", help="auto (bf16 where the hardware has it, else fp32), fp32, bf16 "
                         "or int8 (fastest, loses quality).")


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)], force=True)
    for noisy in ("transformers", "httpx", "urllib3", "huggingface_hub", "filelock", "peft"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging  # a dependency; imported here to keep --help fast

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks.")):
    _state["debug"] = debug or os.environ.get("TEXT2TOKEN_DEBUG") == "1"
    _setup_logging(_state["debug"])


@app.command()
def train(
    overrides: Optional[List[str]] = typer.Argument(
        None, help="Config overrides, e.g. train.lr=1e-4 stages.0.steps=50"),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="YAML config (default: configs/default.yaml)."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Run directory (default: the config's output_dir)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint."),
    skip_bad_lines: bool = typer.Option(False, "--skip-bad-lines", help="Skip bad corpus lines instead of stopping."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only check the config and estimate memory (see `plan`)."),
    architecture: Optional[Path] = typer.Option(None, "--architecture", help="--dry-run: a config.json to use when "
                                                "the backbone is not on this machine."),
    gpu_memory: Optional[float] = typer.Option(None, "--gpu-memory", help="--dry-run: fail if the estimate per GPU "
                                               "exceeds this many GiB."),
    num_gpus: Optional[int] = typer.Option(
        None, "--num-gpus", min=1, help="--dry-run: GPUs (default: WORLD_SIZE or 1)."),
):
    """Build targets and train a Text2Token encoder; prints the before/after score on held-out text.

    Runs as it is under torchrun / accelerate launch (one process per GPU; see docs/multi-node.md)."""
    from .config import load_config
    from .training.loop import train as run_training

    cfg = load_config(config, [*(overrides or []), *(["data.skip_bad_lines=true"] if skip_bad_lines else [])])
    if dry_run:
        _print_plan(cfg, architecture, num_gpus, "ddp", gpu_memory)
        return
    run_dir = run_training(cfg, output_dir=output, resume=resume)
    out.print(f"encoder saved to [bold]{run_dir / 'final'}[/bold]")
    result = run_dir / "eval.json"
    if result.is_file():
        scores = json.loads(result.read_text())
        out.print(tables.score_table(scores["before"], scores["after"]))


def _print_plan(cfg, architecture, num_gpus, sharding, gpu_memory) -> None:
    from .training.distributed import world_size_from_env
    from .training.plan import dry_run

    plan = dry_run(cfg, architecture, num_gpus or world_size_from_env(), sharding, gpu_memory)
    out.print("\n".join(plan.report(cfg, gpu_memory)), highlight=False, soft_wrap=True)


@app.command()
def plan(
    overrides: Optional[List[str]] = typer.Argument(None, help="Config overrides, e.g. train.batch_size=64"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (default: configs/default.yaml)."),
    architecture: Optional[Path] = typer.Option(None, "--architecture", help="A transformers config.json to use when "
                                                "the backbone is not on this machine."),
    num_gpus: Optional[int] = typer.Option(None, "--num-gpus", min=1, help="GPUs (default: WORLD_SIZE or 1)."),
    sharding: str = typer.Option("ddp", "--sharding", help="ddp (every GPU holds the model) or fsdp (sharded)."),
    gpu_memory: Optional[float] = typer.Option(None, "--gpu-memory", help="Fail if the estimate exceeds this many "
                                               "GiB per GPU."),
):
    """Dry run: check a config, build the backbone on the meta device (no weights), count parameters and
    estimate memory per GPU."""
    from .config import load_config

    _print_plan(load_config(config, overrides or []), architecture, num_gpus, sharding, gpu_memory)


INPUT = typer.Option(..., "--input", "-i", help="The texts: .txt (one per line), .jsonl, .csv/.tsv, .parquet, a "
                     "folder of .txt files or a datasets save_to_disk folder.")
TEXT_FIELD = typer.Option("text", "--text-field", help="The text's field (.jsonl) or column (.csv/.tsv, .parquet, "
                          "datasets).")
CHUNK_SIZE = typer.Option(4096, "--chunk-size", min=1, help="Texts length-sorted and batched together (the "
                          "output does not depend on the process count, only on this).")


@app.command()
def encode(
    model: Path = typer.Option(..., "--model", "-m", help="A trained model directory (e.g. runs/default/final)."),
    input: Path = INPUT,
    text_field: str = TEXT_FIELD,
    output: Path = typer.Option(..., "--output", "-o", help="Output .npy file (float32, one row per text)."),
    batch_size: int = typer.Option(32, min=1),
    normalize: bool = typer.Option(False, help="L2-normalise the embeddings."),
    skip_bad_lines: bool = typer.Option(False, help="Skip bad input lines instead of stopping."),
    precision: str = PRECISION,
    chunk_size: int = CHUNK_SIZE,
):
    """Embed every text of a file into a .npy matrix (written through a memory map; the input is read lazily).

    Runs as it is under torchrun / accelerate launch: each process encodes its share (docs/multi-node.md)."""
    from .serving.encode_parallel import EncodeJob, parallel_encode

    if output.suffix != ".npy":
        raise Text2TokenError(f"--output {output}: expected a .npy file name")
    output.parent.mkdir(parents=True, exist_ok=True)
    job = EncodeJob(model, input, batch_size, skip_bad_lines, precision, normalize, chunk_size, text_field)
    shape = parallel_encode(job, output)
    if shape is not None:
        out.print(f"wrote {shape[0]} x {shape[1]} embeddings to {output}")


@app.command()
def explain(
    model: Path = typer.Option(..., "--model", "-m", help="A trained model directory (or a backbone)."),
    text: str = typer.Option(..., "--text", "-t", help="The text to explain."),
    top_k: int = typer.Option(10, "--top-k", "-k", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw them as a bar chart (.png/.svg/.pdf)."),
):
    """Show the top tokens of a text's embedding, decoded through the LM head."""
    from .model.encoder import Encoder

    if plot is not None and plot.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise Text2TokenError(f"--plot {plot}: expected a .png, .svg or .pdf file name")
    encoder = Encoder.load(model)
    pairs = encoder.explain(text, top_k=top_k)
    if plot is not None:
        from .eval.plots import plot_tokens

        plot_tokens(pairs, plot, title=f"top {top_k} tokens: {text[:60]}")
        console.print(f"wrote {plot}")
    if as_json:
        out.print_json(json.dumps([{"token": t, "probability": p} for t, p in pairs]))
        return
    out.print(tables.token_table(pairs, top_k))


@app.command()
def export(
    model: Path = typer.Option(..., "--model", "-m", help="A trained model directory (e.g. runs/default/final)."),
    fmt: str = typer.Option("sentence-transformers", "--format", "-f", help="Export format: sentence-transformers."),
    output: Path = typer.Option(..., "--output", "-o", help="New (or empty) output directory."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or bf16 weights (auto: bf16 where native)."),
):
    """Export an encoder for other libraries (sentence-transformers: loads with SentenceTransformer(OUTPUT))."""
    from .serving.export import export as run_export

    path = run_export(model, output, fmt, precision)
    out.print(f"exported {model} as {fmt} to [bold]{path}[/bold]")


@app.command()
def serve(
    model: Path = typer.Option(..., "--model", "-m", help="A trained model directory (e.g. runs/default/final)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 exposes it to the network)."),
    port: int = typer.Option(8000, "--port", "-p", min=1, max=65535),
    name: Optional[str] = typer.Option(None, "--name", help="Model name in responses (default: the run's name)."),
    max_batch: int = typer.Option(32, "--max-batch", min=1, help="Most texts encoded together."),
    batch_wait_ms: float = typer.Option(5.0, "--batch-wait-ms", min=0.0, help="How long to wait for more requests."),
    max_queue: int = typer.Option(256, "--max-queue", min=1, help="Most texts waiting; beyond: 503 + Retry-After."),
    max_wait: float = typer.Option(5.0, "--max-wait", min=0.1, help="Longest expected wait (s); beyond: 503."),
    normalize: bool = typer.Option(True, help="Unit-length vectors, as OpenAI's embeddings are."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="TEXT2TOKEN_API_KEY",
                                          help="Require 'Authorization: Bearer KEY' on /v1/* (or TEXT2TOKEN_API_KEY)."),
    precision: str = PRECISION,
):
    """Serve the encoder over HTTP with an OpenAI-compatible /v1/embeddings endpoint."""
    from .serving.serve import serve as run_server

    run_server(model, host=host, port=port, name=name, max_batch=max_batch, batch_wait_ms=batch_wait_ms,
               max_queue=max_queue, max_wait_s=max_wait, normalize=normalize, api_key=api_key, precision=precision)


@app.command("index")
def index_cmd(
    model: Path = typer.Option(..., "--model", "-m", help="A trained model directory (e.g. runs/default/final)."),
    input: Path = INPUT,
    text_field: str = TEXT_FIELD,
    output: Path = typer.Option(..., "--output", "-o", help="Index directory (an existing index is replaced)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    sparse_top_k: int = typer.Option(128, "--sparse-top-k", min=1, help="Vocabulary weights kept per text."),
    dense_index: str = typer.Option("flat", "--dense-index",
                                    help="flat (exact cosine), ivf or hnsw (approximate, for large corpora)."),
    skip_bad_lines: bool = typer.Option(False, help="Skip bad input lines instead of stopping."),
    precision: str = PRECISION,
    chunk_size: int = CHUNK_SIZE,
):
    """Index a corpus for search: dense vectors (faiss), sparse vocabulary weights and BM25.

    Runs as it is under torchrun / accelerate launch: each process encodes its share (docs/multi-node.md)."""
    from .serving.encode_parallel import EncodeJob, parallel_index
    from .serving.search import IndexSettings

    settings = IndexSettings(sparse_top_k=sparse_top_k, dense_index=dense_index)
    job = EncodeJob(model, input, batch_size, skip_bad_lines, precision, False, chunk_size, text_field)
    index = parallel_index(job, output, settings)
    if index is not None:
        out.print(f"indexed {len(index.texts)} texts into [bold]{output}[/bold] (dense: {dense_index}, "
                  f"sparse: top {sparse_top_k} tokens, bm25)")


@app.command()
def search(
    index: Path = typer.Option(..., "--index", help="An index directory written by `text2token index`."),
    query: str = typer.Option(..., "--query", "-q", help="The query text."),
    mode: str = typer.Option("dense", "--mode", help="dense (default: best measured), sparse, hybrid or bm25."),
    k: int = typer.Option(10, "--k", "-k", min=1, help="Number of hits."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Use this model instead of the index's."),
    fusion: str = typer.Option("rrf", "--fusion", help="hybrid: rrf (reciprocal-rank fusion) or weighted."),
    dense_weight: float = typer.Option(0.5, "--dense-weight", min=0.0, max=1.0, help="weighted fusion: dense share."),
    tokens: int = typer.Option(5, "--tokens", min=0, help="Matched tokens shown per hit."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Search an index; sparse, hybrid and bm25 hits show the query tokens they matched."""
    from .serving.search import SearchIndex

    hits = SearchIndex.load(index, model=model).search(query, mode=mode, k=k, fusion=fusion,
                                                        dense_weight=dense_weight)
    if as_json:
        rows = [h.to_dict() for h in hits]
        for row in rows:
            row["tokens"] = row["tokens"][:tokens]
        out.print_json(json.dumps({"query": query, "mode": mode, "hits": rows}))
        return
    out.print(tables.hits_table(hits, mode, query, tokens))
    if not hits:
        console.print("no hits")


@app.command("eval")
def eval_cmd(
    model: str = typer.Option(..., "--model", "-m", help="A model directory (or run directory) or baseline:NAME "
                              "(mean, eos, prompteol, mean-bidir, prompteol-bidir, tfidf, bm25, minilm)."),
    suite: str = typer.Option("offline", "--suite", help="The task suite: offline (= v2, the current one), v2 or v1."),
    split: str = typer.Option("test", "--split", help="test (report numbers) or dev (make choices)."),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="Comma-separated task names (default: all)."),
    name: Optional[str] = typer.Option(None, "--name", help="Name in the results (default: from --model)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Results JSON (default: results/NAME.json)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    precision: str = PRECISION,
    backbone: str = typer.Option("smollm2-135m", "--backbone", help="The backbone of the raw baselines "
                                 "(an alias or a model directory)."),
):
    """Score a model on the offline suite (v2: 12 tasks, 5 task types); prints a table, writes JSON."""
    from .eval.baselines import load_model
    from .eval.suite import SUITE_VERSION, VERSIONS, load_suite, run_suite
    from .files import atomic_write

    version = SUITE_VERSION if suite == "offline" else VERSIONS.get(suite)
    if version is None:
        raise Text2TokenError(
            f"unknown suite {suite!r} (choose offline, v2 or v1; MTEB tasks run with `text2token mteb`)")
    if output is not None and output.suffix != ".json":
        raise Text2TokenError(f"--output {output}: expected a .json file name")
    task_list = load_suite(split, [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None, version)
    label = name or (model.split(":", 1)[1] if model.startswith("baseline:") else _model_label(Path(model)))
    encoder = load_model(model, backbone=backbone, precision=precision)
    result = run_suite(encoder, task_list, label, split, version=version)
    result["model_spec"] = model
    result["precision"] = getattr(encoder, "precision", None)  # what --precision became (auto: by the hardware)
    result["precision_requested"] = precision
    output = output or Path("results") / f"{label}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(result, indent=2).encode()
    atomic_write(output, lambda f: f.write(data))
    rows = [(task, r["type"], r["main_metric"], r["main_score"]) for task, r in result["tasks"].items()]
    out.print(tables.task_table(f"{label} on the offline suite v{version} ({split})", rows, result["average"]))
    out.print(f"wrote {output}")


def _model_label(path: Path) -> str:
    return path.parent.name if path.name == "final" else path.name


@app.command()
def compare(
    results: List[Path] = typer.Argument(..., help="Results JSON files written by `text2token eval`."),
    output: Path = typer.Option(Path("results/comparison"), "--output", "-o",
                                help="Output stem: writes STEM.md and STEM.png."),
    title: str = typer.Option("offline suite", "--title"),
):
    """A markdown table and a grouped bar chart (PNG) of several eval results."""
    from .eval.plots import plot_comparison
    from .eval.report import comparison_table, load_results
    from .files import atomic_write

    runs = load_results(results)
    table = comparison_table(runs)
    output.parent.mkdir(parents=True, exist_ok=True)
    md = output.with_suffix(".md")
    atomic_write(md, lambda f: f.write(table.encode()))
    png = plot_comparison(runs, output.with_suffix(".png"), title=title)
    out.print(table)
    out.print(f"wrote {md} and {png}")


@app.command("mteb")
def mteb_cmd(
    model: Path = typer.Option(..., "--model", "-m", help="A trained model directory (e.g. runs/default/final)."),
    tasks: Optional[str] = typer.Option(None, "--tasks", "-t", help="Comma-separated MTEB task names."),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", "-b", help='An MTEB benchmark, e.g. "MTEB(eng, v2)".'),
    output: Path = typer.Option(Path("mteb-results"), "--output", "-o",
                                help="Results folder (mteb's cache layout; finished tasks are not rerun)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    name: Optional[str] = typer.Option(None, "--name", help="Model name in the results (default: text2token/<run>)."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="JSON file {prompt key: template with {text}}."),
    languages: str = typer.Option("eng", "--languages", help="--tasks: ISO 639-3 codes to keep, or 'all'."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rerun tasks already in --output."),
):
    """Evaluate an encoder on MTEB v2 tasks or a benchmark (downloads the datasets; needs internet)."""
    try:
        mteb_model = importlib.import_module("text2token.eval.mteb")
    except ImportError as e:
        raise Text2TokenError(f"mteb is not installed ({e.name or e}): pip install 'text2token[mteb]'") from None

    prompt_map = mteb_model.read_prompts(prompts) if prompts is not None else None
    task_list = mteb_model.resolve_tasks(tasks.split(",") if tasks else None, benchmark,
                                         None if languages == "all" else languages.split(","))
    rows = mteb_model.run_mteb(model, task_list, output, name=name, batch_size=batch_size, prompts=prompt_map,
                               overwrite=overwrite)
    scored = [(r["task"], r["type"], r["metric"], r["score"]) for r in rows]
    out.print(tables.task_table(f"MTEB: {benchmark or tasks}", scored))
    out.print(f"results in [bold]{output}[/bold]")
    failed = [row["task"] for row in rows if "error" in row]
    if failed:
        raise Text2TokenError(f"{len(failed)} task(s) failed: {', '.join(failed)} (see the log above)")


def main() -> None:
    try:
        app()
    except Text2TokenError as e:
        if _state["debug"]:
            raise
        console.print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except OSError as e:
        if _state["debug"]:
            raise
        console.print(f"[bold red]error:[/bold red] {e.strerror or e}: {e.filename or ''}".rstrip(": "),
                      highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
