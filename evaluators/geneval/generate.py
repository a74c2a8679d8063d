"""GenEval stage 1: images for every prompt, in the official folder layout, resumable and sharded.

Image j of prompt i is drawn with seed ``sample_seed(seed, i, j)``, so a folder's images do not
depend on the batch size, on the number of processes or on interruptions. Under ``torchrun``,
rank r writes the prompt folders i with i % world == r. Every PNG is written through a temporary
name and a rename: a killed run leaves only whole images, and the rerun draws the missing ones.
``generation.json`` records the generator, the seed and the prompts (rewritten or not); a folder
is only ever continued with the same settings.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterator, Sequence

from PIL import Image
from tqdm import tqdm

from lina_bench.api.distributed import barrier, rank_and_world
from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import write_bytes_atomic, write_text_atomic
from lina_bench.api.generator import Generator, sample_seed, to_pil
from lina_bench.api.schema import canonical_json
from lina_bench.evaluators.geneval.prompts import Prompts
from lina_bench.evaluators.prompt_folders import METADATA_FILE, prompt_folder, sample_path

GENERATION_FILE = "generation.json"


def generation_record(generator: Generator, prompts: Prompts, images_per_prompt: int, seed: int) -> dict[str, Any]:
    """What a folder's images were made with (everything that changes them)."""
    spec = generator.build_spec
    return {"generator": None if spec is None else {"name": spec.name, "options": spec.options,
                                                    "checkpoint": spec.checkpoint},
            "info": generator.info().as_protocol(), "seed": seed, "images_per_prompt": images_per_prompt,
            "prompts": prompts.source, "seed_rule": "sample_seed(seed, prompt, image)"}


def _check_record(out: Path, record: dict[str, Any]) -> None:
    path = out / GENERATION_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        if canonical_json(old) != canonical_json(record):
            differs = sorted(k for k in set(old) | set(record) if canonical_json(old.get(k)) !=
                             canonical_json(record.get(k)))
            raise LinaBenchError(f"{out} holds images generated with other settings (differs in: "
                                 f"{', '.join(differs)}); use another output folder")
    elif rank_and_world()[0] == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def _save_png(path: Path, image: Image.Image) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())


def draw(generator: Generator, texts: Sequence[str], items: Sequence[tuple[int, int]], seed: int,
         batch_size: int) -> Iterator[tuple[list[tuple[int, int]], list[Image.Image]]]:
    """Image j of prompt i for each (i, j) in ``items``, drawn in batches with ``sample_seed(seed, i, j)``:
    yields (batch items, their images)."""
    for start in range(0, len(items), batch_size):
        batch = list(items[start:start + batch_size])
        images = generator.sample([texts[i] for i, _ in batch], [sample_seed(seed, i, j) for i, j in batch])
        yield batch, [to_pil(image) for image in images]


def check_text_generator(generator: Generator, what: str) -> None:
    info = generator.info()
    if info.conditioning != "text":
        raise LinaBenchError(f"{what} needs a text-to-image generator; {info.family!r} is "
                             f"{info.conditioning}-conditioned")


def generate_images(generator: Generator, prompts: Prompts, out: str | Path, images_per_prompt: int = 4,
                    seed: int = 0, batch_size: int = 4, progress: bool = True) -> int:
    """Draw the missing images of this rank's prompts into ``out``; returns how many were drawn."""
    check_text_generator(generator, "GenEval")
    if images_per_prompt < 1 or batch_size < 1:
        raise LinaBenchError("images per prompt and batch size must be >= 1")
    out = Path(out)
    record = generation_record(generator, prompts, images_per_prompt, seed)
    rank, world = rank_and_world()
    if rank == 0:  # writes generation.json for a new folder
        _check_record(out, record)
    barrier()
    if rank != 0:
        _check_record(out, record)
    mine = range(rank, len(prompts.metadata), world)
    todo = []
    for i in mine:
        folder = prompt_folder(out, i)
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        if not (folder / METADATA_FILE).is_file():
            write_text_atomic(folder / METADATA_FILE, json.dumps(prompts.metadata[i]))
        todo += [(i, j) for j in range(images_per_prompt) if not sample_path(out, i, j).is_file()]
    total = len(mine) * images_per_prompt
    with tqdm(total=total, initial=total - len(todo), unit="image", desc="geneval generate",
              disable=not progress or rank != 0) as bar:
        for batch, images in draw(generator, prompts.texts, todo, seed, batch_size):
            for (i, j), image in zip(batch, images, strict=True):
                _save_png(sample_path(out, i, j), image)
            bar.update(len(batch))
    barrier()
    return len(todo)
