"""``lina-bench fid`` and ``lina-bench fid-ref build``: the FID family for a generator or samples.

Shard over processes with ``torchrun --nproc-per-node K lina-bench fid ...`` (NCCL on GPUs, gloo
on CPU); rerunning an interrupted command resumes from its finished shards.
"""

from __future__ import annotations

from pathlib import Path

import click

from lina_bench.cli.options import (
    DEFAULT_OUT,
    init_distributed,
    measure_command,
    no_store_option,
    parse_assignments,
    report_measurement,
)


@click.command("fid")
@click.option("--generator", help="Registered class-conditional generator to sample from.")
@click.option("--set", "generator_options", multiple=True, metavar="KEY=VALUE", help="Generator option (repeatable).")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Local generator weights.")
@click.option("--cfg", type=float, help="Classifier-free guidance scale (sets the generator option 'cfg').")
@click.option("--num-samples", type=click.IntRange(min=1), default=50000, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Sample i is drawn with sample_seed(seed, i).")
@click.option("--samples", type=click.Path(exists=True), help="Image folder or ADM-style npz (arr_0) instead.")
@click.option("--ref", required=True, type=click.Path(), help="ADM reference batch or MAR fid_stats npz.")
@click.option("--inception-weights", required=True, type=click.Path(),
              help="weights-inception-2015-12-05-6726825d.pth (torch-fidelity's TF-converted Inception).")
@click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--shard-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Samples per resumable feature shard.")
@click.option("--is-convention", type=click.Choice(["adm", "torch-fidelity"]), default="adm", show_default=True,
              help="adm: sequential 5000-sample splits; torch-fidelity: 10 shuffled splits, seed 2020.")
@click.option("--no-kid", is_flag=True, help="Skip KID.")
@click.option("--no-pr", is_flag=True, help="Skip precision/recall.")
@click.option("--save-png", type=click.Path(file_okay=False), help="Also write every sample as a PNG here.")
@click.option("--save-npz", type=click.Path(dir_okay=False), help="Also write an ADM-style arr_0 npz.")
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Results store and feature cache.")
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics and protocol as JSON.")
@no_store_option
def fid(generator, generator_options, checkpoint, cfg, num_samples, seed, samples, ref, inception_weights,
        batch_size, shard_size, is_convention, no_kid, no_pr, save_png, save_npz, out_dir, device, as_json,
        no_store) -> None:
    """FID, sFID, Inception Score, KID and precision/recall against reference statistics."""
    from lina_bench.api.errors import LinaBenchError
    from lina_bench.engine.runner import resolve_device
    from lina_bench.engine.suite import Entry

    if bool(generator) == bool(samples):
        raise LinaBenchError("give exactly one of --generator G or --samples DIR|NPZ")
    device = init_distributed(resolve_device(device))
    options = {"ref": ref, "inception_weights": inception_weights, "num_samples": num_samples,
               "batch_size": batch_size, "shard_size": shard_size, "is_convention": is_convention,
               "kid": not no_kid, "precision_recall": not no_pr, "save_png": save_png, "save_npz": save_npz}
    if generator:
        gen_options = parse_assignments(generator_options, "--set")
        if cfg is not None:
            gen_options["cfg"] = cfg
        target, kind = Entry(generator, gen_options, checkpoint=checkpoint), "generator"
    else:
        target, kind = Entry(Path(samples).name, {"path": samples}), "samples"
    result = measure_command("fid", "fid", options, target, kind, out_dir, no_store, device, seed)
    if result.metrics:  # rank 0
        report_measurement(result, out_dir, as_json)


@click.group("fid-ref")
def fid_ref() -> None:
    """Reference statistics for FID."""


@fid_ref.command("build")
@click.argument("images", type=click.Path(exists=True))
@click.option("--inception-weights", required=True, type=click.Path())
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="The ADM-format npz to write.")
@click.option("--with-images", is_flag=True, help="Also store the images as arr_0 (for precision/recall).")
@click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--work", default=DEFAULT_OUT + "/work", show_default=True, type=click.Path(file_okay=False))
def fid_ref_build(images, inception_weights, output, with_images, batch_size, device, work) -> None:
    """Build ADM-format reference statistics (mu, sigma, mu_s, sigma_s[, arr_0]) from IMAGES
    (a folder or an npz with arr_0)."""
    import torch

    from lina_bench.api.files import file_sha256
    from lina_bench.engine.runner import resolve_device
    from lina_bench.evaluators.fid import FidOptions, ShardedFeatures, feature_cache_folder
    from lina_bench.evaluators.fid_metrics import feature_statistics
    from lina_bench.evaluators.fid_reference import write_reference
    from lina_bench.evaluators.fid_sources import open_samples
    from lina_bench.evaluators.inception import InceptionFeatures, check_weights

    source = open_samples(images)
    weights = check_weights(inception_weights)
    options = FidOptions(batch_size=batch_size)
    extractor = InceptionFeatures(weights, resolve_device(device))
    folder = feature_cache_folder(Path(work), source, file_sha256(weights), options)
    sharded = ShardedFeatures(source, extractor, folder, options, "reference")
    sharded.compute(progress=True)
    features = sharded.load()
    mu, sigma = feature_statistics(torch.from_numpy(features["pool"]))
    mu_s, sigma_s = feature_statistics(torch.from_numpy(features["spatial"]))
    write_reference(output, mu, sigma, mu_s, sigma_s, source if with_images else None, batch_size)
    click.echo(f"wrote {output} ({len(source)} images{', with arr_0' if with_images else ''})")
