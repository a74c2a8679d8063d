"""``lina-bench sample``: images of a generator for given classes or prompts, and a grid of them."""

from __future__ import annotations

from pathlib import Path

import click

from lina_bench.api.errors import LinaBenchError
from lina_bench.cli.options import build_cli_generator, generator_options


def _classes(text: str | None) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()] if text else []
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of class labels", param_hint="--classes") \
            from exc


def _prompts(path: str | None) -> list[str]:
    if not path:
        return []

    try:
        prompts = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise LinaBenchError(f"cannot read prompt file {path}: {exc}") from exc
    if not prompts:
        raise LinaBenchError(f"prompt file {path} has no prompts (one per line)")
    return prompts


def grid_image(images, columns: int):
    """uint8 (B, 3, H, W) -> one PIL image, ``columns`` images per row, 2 px white gaps."""
    import torch
    from torchvision.utils import make_grid

    from lina_bench.api.generator import to_pil

    return to_pil(make_grid(images.float(), nrow=columns, padding=2, pad_value=255).round().to(torch.uint8))


@click.command()
@generator_options
@click.option("--classes", help="Comma-separated class labels, e.g. 207,360,387.")
@click.option("--prompts", "prompt_file", type=click.Path(dir_okay=False), help="A text file, one prompt per line.")
@click.option("--n", "per_condition", type=click.IntRange(min=1), default=4, show_default=True,
              help="Images per class or prompt.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--official-rng", is_flag=True,
              help="Draw the whole set as one batch with the official sampler's random-number order "
                   "(Generator.official_sample), to compare with the official code's images.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images per sample() call (results do not depend on it; not with --official-rng).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the PNGs.")
def sample(generator: str, generator_options: tuple[str, ...], attention: str | None, checkpoint: str | None,
           classes: str | None, prompt_file: str | None, per_condition: int, seed: int, official_rng: bool,
           batch_size: int, device: str, out_dir: str) -> None:
    """Write --n PNGs per class or prompt (``<condition index>_<j>.png``) and ``grid.png`` (one row per
    condition). Image i uses seed sample_seed(SEED, i), so it does not depend on the batch size."""
    import torch
    from tqdm import tqdm

    from lina_bench.api.generator import sample_seed, to_pil

    if bool(classes) == bool(prompt_file):
        raise LinaBenchError("give exactly one of --classes or --prompts")
    conditions: list = _classes(classes) or _prompts(prompt_file)
    gen = build_cli_generator(generator, generator_options, attention, checkpoint).to(device)
    wanted = [c for c in conditions for _ in range(per_condition)]
    gen.check_conditions(wanted, [0] * len(wanted))
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        if official_rng:
            images = gen.official_sample(wanted, seed)
        else:
            parts = []
            for start in tqdm(range(0, len(wanted), batch_size), desc="sample", unit="batch"):
                chunk = range(start, min(start + batch_size, len(wanted)))
                parts.append(gen.sample([wanted[i] for i in chunk], [sample_seed(seed, i) for i in chunk]))
            images = torch.cat(parts)
    for i, image in enumerate(images):
        to_pil(image).save(folder / f"{i // per_condition:04d}_{i % per_condition:02d}.png")
    grid_image(images, per_condition).save(folder / "grid.png")
    click.echo(f"wrote {len(images)} images and grid.png to {folder}")
