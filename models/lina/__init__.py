"""LINA / NOVA masked autoregression with continuous tokens (the ``lina`` generator).

A checkpoint is an official pipeline directory (``model_index.json``, ``transformer/``, ``vae/``,
``scheduler/``), e.g. the Hub's ``LINA-c2i-d48w1536-marvae``; its ``model_index.json`` says which attention
the model uses (``transformer_nova`` is NOVA: ``softmax``; ``transformer_nova_linear_decouple1_kvscale1`` is
LINA: ``lina``; the grid's ``linear``, ``linear-sub``, ``linear-dwc``, ``linear-sub-dwc``)::

    from lina_bench.api.generator import build_generator

    gen = build_generator("lina", {"guidance": 2.4, "min_guidance": 1.0}, checkpoint="LINA-c2i-d48w1536-marvae")
    images = gen.sample([207, 360], seeds=[0, 1])      # per-sample seeds, batch-independent
    official = gen.official_sample([207, 360], seed=0)  # = the official NOVAC2IPipeline called with
                                                        #   generator=torch.Generator().manual_seed(0)

``official_sample`` is how to check the port on a checkpoint: run the official pipeline with the same labels,
``num_inference_steps=ar_steps``, ``num_diffusion_steps``, ``guidance_scale``, ``min_guidance_scale`` and
generator, ``output_type="np"``, in float32 on the CPU, and compare the uint8 images (the tests accept
|diff| <= 1 on at most 0.1 % of the pixels).

Text-to-image checkpoints (the Hub's ``LINA-t2i-d48w1536-sdxl512`` / ``-sdxl1024``, NOVA's T2I models) are the
official ``NOVAPipeline`` directory, which adds ``tokenizer/`` (CodeGen) and ``text_encoder/`` (Phi-2); they
take prompts, with the defaults of LINA's GenEval runs (guidance 7, constant over the AR steps as in the
official T2I pipeline, 128 AR steps, 25 diffusion steps) and option ``negative_prompt`` (default empty)::

    gen = build_generator("lina", {}, checkpoint="LINA-t2i-d48w1536-sdxl512")
    official = gen.official_sample(["a photo of a cat"] * 4, seed=0)  # = NOVAPipeline(prompt="a photo of a cat",
                                                                      #   num_images_per_prompt=4, ...)

Option ``config`` (a ``transformer/config.json``) builds any model, text-to-image at 1024 px included, with
random weights and no text encoder, for the cost measurements.
"""

from lina_bench.models.lina.generator import LinaGenerator

__all__ = ["LinaGenerator"]
