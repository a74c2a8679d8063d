"""DiT's Gaussian diffusion for sampling: ``create_diffusion(str(N))`` of facebookresearch/DiT
(``diffusion/__init__.py``, ``gaussian_diffusion.py``, ``respace.py``; itself from OpenAI's ADM/IDDPM).

The linear beta schedule over 1000 steps, respaced to the ``timestep_respacing`` sections
(``space_timesteps``), epsilon prediction, and a learned variance interpolated between the clipped
posterior variance and beta (``LEARNED_RANGE``; without ``learn_sigma``, ``FIXED_LARGE``). Sampling is
ancestral (``p_sample``) without clipping x0, as ``sample.py`` calls it (``clip_denoised=False``).

Why not diffusers' ``DDPMScheduler``: its timestep spacing and its learned-range variance are computed
differently from the official respaced process (which rebuilds betas from the kept alphas_cumprod and
extracts float64 tables as float32), and reproducing the official samples needs the official arithmetic
in the official order; this module keeps both.
"""

from __future__ import annotations

import numpy as np
import torch

NUM_TRAIN_TIMESTEPS = 1000


def linear_betas(num_diffusion_timesteps: int = NUM_TRAIN_TIMESTEPS) -> np.ndarray:
    """``get_named_beta_schedule("linear", T)``: Ho et al.'s schedule, scaled to T steps (float64)."""
    scale = 1000 / num_diffusion_timesteps
    return np.linspace(scale * 0.0001, scale * 0.02, num_diffusion_timesteps, dtype=np.float64)


def space_timesteps(num_timesteps: int, section_counts: str | list[int]) -> set[int]:
    """The timesteps kept from the original process (the official ``space_timesteps``): ``"250"`` keeps
    250 evenly spaced steps, ``"10,15,20"`` strides equal thirds differently, ``"ddimN"`` DDIM's stride."""
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            desired_count = int(section_counts[len("ddim"):])
            for i in range(1, num_timesteps):
                if len(range(0, num_timesteps, i)) == desired_count:
                    return set(range(0, num_timesteps, i))
            raise ValueError(f"cannot create exactly {num_timesteps} steps with an integer stride")
        section_counts = [int(x) for x in section_counts.split(",")]
    size_per = num_timesteps // len(section_counts)
    extra = num_timesteps % len(section_counts)
    start_idx = 0
    all_steps: list[int] = []
    for i, section_count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if size < section_count:
            raise ValueError(f"cannot divide section of {size} steps into {section_count}")
        frac_stride = 1 if section_count <= 1 else (size - 1) / (section_count - 1)
        cur_idx = 0.0
        for _ in range(section_count):
            all_steps.append(start_idx + round(cur_idx))
            cur_idx += frac_stride
        start_idx += size
    return set(all_steps)


class SpacedDiffusion:
    """The respaced process of ``create_diffusion(timestep_respacing, learn_sigma=...)``, sampling only.

    ``timestep_map[i]`` is the original timestep that the model sees at respaced step ``i``; sampling
    runs ``i = num_timesteps - 1, ..., 0``.
    """

    def __init__(self, timestep_respacing: str, learn_sigma: bool = True,
                 diffusion_steps: int = NUM_TRAIN_TIMESTEPS) -> None:
        base_betas = linear_betas(diffusion_steps)
        use_timesteps = space_timesteps(diffusion_steps, timestep_respacing or [diffusion_steps])
        base_alphas_cumprod = np.cumprod(1.0 - base_betas, axis=0)
        last_alpha_cumprod, new_betas, self.timestep_map = 1.0, [], []
        for i, alpha_cumprod in enumerate(base_alphas_cumprod):
            if i in use_timesteps:
                new_betas.append(1 - alpha_cumprod / last_alpha_cumprod)
                last_alpha_cumprod = alpha_cumprod
                self.timestep_map.append(i)
        self.learn_sigma = learn_sigma
        betas = np.array(new_betas, dtype=np.float64)
        self.betas = betas
        self.num_timesteps = int(betas.shape[0])
        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas, axis=0)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_log_variance_clipped = (
            np.log(np.append(self.posterior_variance[1], self.posterior_variance[1:]))
            if len(self.posterior_variance) > 1 else np.array([]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        self.log_betas = np.log(betas)
        fixed_large = np.append(self.posterior_variance[1], betas[1:]) if len(betas) > 1 else betas
        self.fixed_large_log_variance = np.log(fixed_large)

    def model_timesteps(self, i: int, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The (batch,) int64 timesteps the model is called with at respaced step ``i``."""
        return torch.full((batch,), self.timestep_map[i], dtype=torch.int64, device=device)

    @staticmethod
    def _extract(arr: np.ndarray, i: int, x: torch.Tensor) -> torch.Tensor:
        """``_extract_into_tensor``: the float64 table entry as float32 (then x's dtype), broadcast to x."""
        value = torch.from_numpy(arr)[torch.tensor([i])].float().to(x.dtype).to(x.device)
        return value.view(1, *([1] * (x.dim() - 1))) + torch.zeros(x.shape, dtype=x.dtype, device=x.device)

    def p_mean_variance(self, model_output: torch.Tensor, x: torch.Tensor, i: int) -> dict[str, torch.Tensor]:
        """Mean, log-variance and x0 of p(x_{i-1} | x_i) from the model's output at respaced step ``i``."""
        c = x.shape[1]
        if self.learn_sigma:
            model_output, model_var_values = torch.split(model_output, c, dim=1)
            min_log = self._extract(self.posterior_log_variance_clipped, i, x)
            max_log = self._extract(self.log_betas, i, x)
            frac = (model_var_values + 1) / 2
            model_log_variance = frac * max_log + (1 - frac) * min_log
        else:
            model_log_variance = self._extract(self.fixed_large_log_variance, i, x)
        pred_xstart = (self._extract(self.sqrt_recip_alphas_cumprod, i, x) * x
                       - self._extract(self.sqrt_recipm1_alphas_cumprod, i, x) * model_output)
        mean = (self._extract(self.posterior_mean_coef1, i, x) * pred_xstart
                + self._extract(self.posterior_mean_coef2, i, x) * x)
        return {"mean": mean, "log_variance": model_log_variance, "pred_xstart": pred_xstart}

    def p_sample(self, model_output: torch.Tensor, x: torch.Tensor, i: int, noise: torch.Tensor) -> torch.Tensor:
        """x_{i-1} = mean + [i != 0] exp(log_variance / 2) noise, as the official ``p_sample``."""
        out = self.p_mean_variance(model_output, x, i)
        nonzero_mask = torch.full((x.shape[0],) + (1,) * (x.dim() - 1), float(i != 0), dtype=torch.float32,
                                  device=x.device)
        return out["mean"] + nonzero_mask * torch.exp(0.5 * out["log_variance"]) * noise
