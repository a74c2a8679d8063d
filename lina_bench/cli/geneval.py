"""``lina-bench geneval generate|detect|score|run`` and ``lina-bench clip-score``.

Every stage resumes: rerun an interrupted command and it does only what is missing. Shard
generation and detection with ``torchrun --nproc-per-node K lina-bench geneval ...``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from lina_bench.cli.options import (
    DEFAULT_OUT,
    build_cli_generator,
    generator_options,
    init_distributed,
    measure_command,
    no_store_option,
    option_group,
    parse_assignments,
    report_measurement,
    stored_line,
)

_prompt_options = option_group(
    click.option("--metadata", required=True, type=click.Path(dir_okay=False),
                 help="evaluation_metadata.jsonl of your GenEval checkout (prompts/)."),
    click.option("--object-names", type=click.Path(dir_okay=False),
                 help="object_names.txt [default: the file beside --metadata]."),
    click.option("--rewrites", type=click.Path(dir_okay=False),
                 help="Prompt rewrites for generation: JSON {prompt: rewrite} or a metadata-aligned JSONL."),
)
_generation_options = option_group(
    generator_options,
    click.option("--images-per-prompt", type=click.IntRange(min=1), default=4, show_default=True),
    click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                 help="Image j of prompt i is drawn with sample_seed(seed, i, j)."),
    click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True),
)
_detect_options = option_group(
    click.option("--detector", type=click.Choice(["transformers", "mmdet"]), default="transformers",
                 show_default=True, help="Detector backend."),
    click.option("--detector-weights", required=True, type=click.Path(),
                 help="transformers: a local Mask2Former folder; mmdet: the .pth checkpoint."),
    click.option("--mmdet-config", type=click.Path(dir_okay=False),
                 help="mmdet config [default: mmdet's mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py]."),
    click.option("--clip-model", default="ViT-L-14-quickgelu", show_default=True,
                 help="open_clip architecture (with --clip-weights) or a local open_clip model folder."),
    click.option("--clip-weights", type=click.Path(dir_okay=False), help="Local CLIP weights file."),
    click.option("--bgcolor", default="#999", show_default=True, help="Canvas behind masked objects."),
    click.option("--no-crop", is_flag=True, help="Do not crop objects to their box before colour classification."),
    click.option("--save-masks", is_flag=True, help="Also keep each image's masks (packed bits, npz)."),
)
_score_options = option_group(
    click.option("--option", "score_options", multiple=True, metavar="NAME=VALUE",
                 help="Official scorer option: threshold, counting_threshold, max_objects, max_overlap, "
                      "position_threshold (repeatable)."),
    click.option("--json", "as_json", is_flag=True, help="Print the summary and protocol as JSON."),
    no_store_option,
)
_common_options = option_group(
    click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
                 help="Results store, detection cache, results.jsonl and summary.json."),
    click.option("--device", default="auto", show_default=True),
)


def _settings(detector, detector_weights, mmdet_config, clip_model, clip_weights, bgcolor, no_crop, save_masks):
    from lina_bench.evaluators.geneval.pipeline import DetectSettings

    return DetectSettings(detector, detector_weights, mmdet_config, clip_model, clip_weights, bgcolor, not no_crop,
                          save_masks)


def _generate(metadata, object_names, rewrites, generator, generator_opts, attention, checkpoint, images,
              images_per_prompt, seed, batch_size, device) -> int:
    from lina_bench.evaluators.geneval.generate import generate_images
    from lina_bench.evaluators.geneval.prompts import load_prompts

    prompts = load_prompts(metadata, object_names, rewrites)
    built = build_cli_generator(generator, generator_opts, attention, checkpoint).to(device)
    return generate_images(built, prompts, images, images_per_prompt, seed, batch_size)


def _score_and_report(images, out_dir, cache, score_options, object_names, device, as_json, no_store=False) -> None:
    """Score a folder from a detection cache as the ``geneval`` evaluator does on a samples target."""
    from lina_bench.engine.suite import Entry
    from lina_bench.evaluators.geneval.results import summarize

    options = {"detections": str(cache.folder), "object_names": object_names, "out": str(out_dir),
               "options": parse_assignments(score_options, "--option")}
    result = measure_command("geneval", "geneval", options, Entry(Path(images).name, {"path": str(images)}),
                             "samples", out_dir, no_store, device)
    if not result.metrics:  # not rank 0
        return
    summary = summarize(Path(out_dir) / "results.jsonl")
    if as_json:
        click.echo(json.dumps({"summary": summary.as_dict(), "protocol": result.protocol, "run_id": result.run_id},
                              indent=2))
        return
    click.echo(summary.table())
    click.echo(f"\nwrote {Path(out_dir) / 'results.jsonl'} and summary.json; {stored_line(result, out_dir)}")


@click.group("geneval")
def geneval() -> None:
    """GenEval (object detection) with the official scoring semantics: generate, detect, score."""


@geneval.command("generate")
@_prompt_options
@_generation_options
@click.option("--images", required=True, type=click.Path(file_okay=False), help="Output image folder.")
@click.option("--device", default="auto", show_default=True)
def generate_cmd(metadata, object_names, rewrites, generator, generator_options, attention, checkpoint,
                 images_per_prompt, seed, batch_size, images, device) -> None:
    """Images for every prompt in GenEval's layout (<images>/<00000>/samples/<0000>.png)."""
    from lina_bench.engine.runner import resolve_device

    device = init_distributed(resolve_device(device))
    drawn = _generate(metadata, object_names, rewrites, generator, generator_options, attention, checkpoint, images,
                      images_per_prompt, seed, batch_size, device)
    click.echo(f"drew {drawn} image(s) into {images}")


@geneval.command("detect")
@click.argument("images", type=click.Path(file_okay=False))
@click.option("--object-names", required=True, type=click.Path(dir_okay=False),
              help="object_names.txt of your GenEval checkout (detector class order).")
@_detect_options
@_common_options
def detect_cmd(images, object_names, detector, detector_weights, mmdet_config, clip_model, clip_weights, bgcolor,
               no_crop, save_masks, out_dir, device) -> None:
    """Detections and object colours of every image, cached per image."""
    from lina_bench.engine.runner import resolve_device
    from lina_bench.evaluators.geneval.pipeline import detect

    device = init_distributed(resolve_device(device))
    settings = _settings(detector, detector_weights, mmdet_config, clip_model, clip_weights, bgcolor, no_crop,
                         save_masks)
    cache = detect(images, out_dir, settings, object_names, device)
    click.echo(f"detections in {cache.folder}")


@geneval.command("score")
@click.argument("images", type=click.Path(file_okay=False))
@click.option("--detections", type=click.Path(file_okay=False),
              help="Detection cache folder [default: the only one under OUT/geneval-detections].")
@click.option("--object-names", type=click.Path(dir_okay=False), help="Orders classes in results.jsonl details.")
@_score_options
@_common_options
def score_cmd(images, detections, object_names, score_options, as_json, no_store, out_dir, device) -> None:
    """Verdicts from cached detections: results.jsonl (official format), summary.json, results store."""
    from lina_bench.evaluators.geneval.pipeline import find_cache

    _score_and_report(images, out_dir, find_cache(out_dir, detections), score_options, object_names, device, as_json,
                      no_store)


@geneval.command("run")
@_prompt_options
@_generation_options
@click.option("--images", type=click.Path(file_okay=False), help="Image folder [default: OUT/geneval-images].")
@_detect_options
@_score_options
@_common_options
def run_cmd(metadata, object_names, rewrites, generator, generator_options, attention, checkpoint, images_per_prompt,
            seed, batch_size, images, detector, detector_weights, mmdet_config, clip_model, clip_weights, bgcolor,
            no_crop, save_masks, score_options, as_json, no_store, out_dir, device) -> None:
    """generate + detect + score for a registered text-to-image generator."""
    from lina_bench.engine.runner import resolve_device
    from lina_bench.evaluators.geneval.pipeline import detect
    from lina_bench.evaluators.geneval.prompts import object_names_path

    device = init_distributed(resolve_device(device))
    images = images or str(Path(out_dir) / "geneval-images")
    names = object_names_path(metadata, object_names)
    from lina_bench.evaluators.geneval.scoring import ScoringOptions

    ScoringOptions.parse(parse_assignments(score_options, "--option"))  # fail before hours of generation
    _generate(metadata, names, rewrites, generator, generator_options, attention, checkpoint, images,
              images_per_prompt, seed, batch_size, device)
    settings = _settings(detector, detector_weights, mmdet_config, clip_model, clip_weights, bgcolor, no_crop,
                         save_masks)
    cache = detect(images, out_dir, settings, names, device)
    _score_and_report(images, out_dir, cache, score_options, names, device, as_json, no_store)


@click.command("clip-score")
@click.argument("images", type=click.Path(file_okay=False))
@click.option("--clip-model", default="ViT-L-14-quickgelu", show_default=True,
              help="open_clip architecture (with --clip-weights) or a local open_clip model folder.")
@click.option("--clip-weights", type=click.Path(dir_okay=False), help="Local CLIP weights file.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_common_options
@no_store_option
def clip_score_cmd(images, clip_model, clip_weights, batch_size, as_json, out_dir, device, no_store) -> None:
    """CLIP score of a GenEval-layout image folder against each prompt folder's prompt."""
    from lina_bench.engine.runner import resolve_device
    from lina_bench.engine.suite import Entry

    options = {"clip_model": clip_model, "clip_weights": clip_weights, "batch_size": batch_size}
    result = measure_command("clip-score", "clip-score", options, Entry(Path(images).name, {"path": str(images)}),
                             "samples", out_dir, no_store, resolve_device(device))
    report_measurement(result, out_dir, as_json)
