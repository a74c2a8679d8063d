"""LlamaGen and LASADGen: class-conditional raster-order AR over VQ codes (``llamagen`` generator).

* :mod:`.gpt` -- LlamaGen's GPT (official parameter names, 2D RoPE), softmax or lasad attention.
* :mod:`.decoding` -- per-layer decoding memory (KV cache, recurrent state) and lasad's recurrent step.
* :mod:`.vq` -- the VQ tokenizer's decoder (and encoder weights, for strict loading).
* :mod:`.sampling` -- the official sampler (CFG on logits, temperature, top-k / top-p).
* :mod:`.loading` -- official ``.pt`` files, strict loading with errors naming the keys.
* :mod:`.generator` -- :class:`LlamaGenGenerator`, the generator contract.
"""

from lina_bench.models.llamagen.generator import LlamaGenGenerator

__all__ = ["LlamaGenGenerator"]
