"""The StyleGAN2-ADA LightningModule: G, D and G_ema, trained with the official four-phase schedule.

One training step is one official iteration: the phases Gmain, Greg (every G_reg_interval iterations), Dmain and
Dreg (every D_reg_interval), each accumulating gradients over `batch_gpu`-sized rounds, reducing them across ranks,
cleaning NaN/Inf and stepping its network's Adam; then the G_ema update, the counters and the ADA adjustment.
Intervals, EMA, ADA and stopping are driven by the module's own counters (`cur_nimg`, `batch_idx`): Lightning's
`global_step` counts optimizer steps (2 to 4 per iteration here).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from omegaconf import OmegaConf

from stylefuse.augment.ada import build_augment
from stylefuse.errors import ConfigError
from stylefuse.nn import Discriminator, Generator, set_block_options
from stylefuse.training.logging import log_scalars
from stylefuse.training.loss import RoundInputs, StyleGAN2Loss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Phase:
    name: str       # 'Gmain', 'Greg', 'Dmain' or 'Dreg'
    network: str    # 'G' or 'D': whose parameters (and optimizer) the phase trains
    interval: int   # Runs when batch_idx % interval == 0; also the gain of its loss (lazy regularization)


class PhaseInputSampler:
    """Draws the random inputs of a phase for the GLOBAL batch and hands each rank its own slice.

    Every rank holds an identically seeded generator, so N ranks of batch B/N see exactly the latents, labels, mixing
    cutoffs and path-length noise that one device of batch B sees (rank r gets global samples r, r+N, r+2N, ..., the
    same interleaving as the distributed sampler of the real images).
    """

    def __init__(self, seed: int):
        self.seed = seed
        self.generator: torch.Generator | None = None

    def _rng(self, device: torch.device) -> torch.Generator:
        if self.generator is None or self.generator.device != device:
            self.generator = torch.Generator(device=device).manual_seed(self.seed)
        return self.generator

    def state_dict(self) -> dict:
        return {"seed": self.seed, "state": self.generator.get_state() if self.generator is not None else None}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.seed = state["seed"]
        if state["state"] is not None:
            self._rng(device).set_state(state["state"])

    def draw(self, phase: str, G: Generator, batch_size: int, batch_gpu: int, rank: int, world_size: int,
             label_bank: torch.Tensor, style_mixing_prob: float, device: torch.device) -> list[RoundInputs]:
        rng = self._rng(device)
        local = lambda t: t[rank::world_size].split(batch_gpu)  # noqa: E731
        num_rounds = batch_size // (batch_gpu * world_size)

        gen_z = local(torch.randn([batch_size, G.z_dim], generator=rng, device=device))
        if label_bank.shape[0] > 0:
            idx = torch.randint(label_bank.shape[0], [batch_size], generator=rng, device=device)
            gen_c = local(label_bank[idx])
        else:
            gen_c = local(torch.zeros([batch_size, G.c_dim], device=device))

        # Style mixing: one coin flip and one cutoff in [1, num_ws - 1] per round, as officially.
        mix_z: Sequence[torch.Tensor | None] = [None] * num_rounds
        cutoffs: list[int | None] = [None] * num_rounds
        if style_mixing_prob > 0:
            mix_z = local(torch.randn([batch_size, G.z_dim], generator=rng, device=device))
            coins = torch.rand([num_rounds], generator=rng, device=device).tolist()
            draws = torch.randint(1, G.num_ws, [num_rounds], generator=rng, device=device).tolist()
            cutoffs = [cut if coin < style_mixing_prob else None for coin, cut in zip(coins, draws)]

        pl_noise: Sequence[torch.Tensor | None] = [None] * num_rounds
        if phase == "Greg":
            res = G.img_resolution
            noise = torch.randn([batch_size, G.img_channels, res, res], generator=rng, device=device)
            pl_noise = local(noise / math.sqrt(res * res))

        return [RoundInputs(gen_z=z, gen_c=c, mix_z=m, mix_cutoff=cut, pl_noise=n)
                for z, c, m, cut, n in zip(gen_z, gen_c, mix_z, cutoffs, pl_noise)]


class StyleGAN2Module(pl.LightningModule):
    def __init__(
        self,
        G_kwargs: dict,                   # Generator constructor arguments (official names).
        D_kwargs: dict,                   # Discriminator constructor arguments (official names).
        loss_kwargs: dict,                # StyleGAN2Loss arguments: r1_gamma, style_mixing_prob, pl_weight, ...
        optim_kwargs: dict,               # Adam arguments before lazy-regularization scaling: lr, betas, eps.
        batch_size: int,                  # Images per iteration over all ranks.
        batch_gpu: int,                   # Images per accumulation round on each rank.
        total_kimg: float,                # Training length.
        augment: dict | None = None,      # `augment` config: mode (ada|fixed|noaug), p / initial_p, target, pipe.
        G_reg_interval: int = 4,          # Lazy regularization interval of G (path length).
        D_reg_interval: int = 16,         # Lazy regularization interval of D (R1).
        ema_kimg: float = 10,             # Half-life of the G_ema average, in thousands of images.
        ema_rampup: float | None = None,  # EMA ramp-up: half-life at most cur_nimg * ema_rampup, None = no ramp-up.
        kimg_per_tick: float = 4,         # Statistics are reported once per tick.
        seed: int = 0,                    # Seed of the latent/label sampler (identical on every rank).
        training_set_kwargs: dict | None = None,  # How to rebuild the training set (saved with the networks).
        fp32_channels_last: bool | None = False,  # float32 blocks of G and D channels-last; None = on CPU only.
        fp16_dtype: str = "float16",              # dtype of the fp16 blocks: float16 (official) or bfloat16.
    ):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        if batch_size % batch_gpu != 0:
            raise ConfigError(f"batch_size {batch_size} is not a multiple of batch_gpu {batch_gpu}; "
                              f"change batch_size or batch_gpu")

        if fp16_dtype not in ("float16", "bfloat16"):
            raise ConfigError(f"fp16_dtype must be float16 or bfloat16, got {fp16_dtype!r}; fix model.fp16_dtype")
        self.G = Generator(**copy.deepcopy(G_kwargs)).train().requires_grad_(False)
        self.D = Discriminator(**copy.deepcopy(D_kwargs)).train().requires_grad_(False)
        for net in (self.G, self.D):
            set_block_options(net, fp16_dtype=fp16_dtype)
        if fp32_channels_last is not None:
            self.configure_layout(torch.device("cpu"))
        self.G_ema = copy.deepcopy(self.G).eval()
        self.loss = StyleGAN2Loss(**loss_kwargs)
        augment_cfg = OmegaConf.create(augment if augment is not None else {"mode": "noaug"})
        self.augment_pipe, self.ada = build_augment(augment_cfg, batch_size)
        if self.augment_pipe is not None:
            self.augment_pipe.train().requires_grad_(False)

        self.phases = [Phase("Gmain", "G", 1), Phase("Greg", "G", G_reg_interval),
                       Phase("Dmain", "D", 1), Phase("Dreg", "D", D_reg_interval)]
        self.sampler = PhaseInputSampler(seed)
        self.register_buffer("cur_nimg", torch.zeros([], dtype=torch.int64))
        self.register_buffer("batch_idx", torch.zeros([], dtype=torch.int64))
        self.register_buffer("label_bank", torch.zeros([0, self.G.c_dim]), persistent=False)

        self._stats: dict[str, torch.Tensor] = {}  # name -> [sum, sum of squares, count] since the last tick
        self._tick_start_nimg = 0
        self._tick_start_time = time.time()
        self._start_time = time.time()
        self._tick = 0
        self.tick_values: dict[str, float] = {}  # the last tick's statistics (for the progress bar)

    # --- Progress -----------------------------------------------------------------------------------------------

    @property
    def kimg(self) -> float:
        return int(self.cur_nimg) / 1000

    @property
    def done(self) -> bool:
        return int(self.cur_nimg) >= self.hparams.total_kimg * 1000

    @property
    def augment_p(self) -> float | None:
        return float(self.augment_pipe.p) if self.augment_pipe is not None else None

    # --- Lightning hooks ----------------------------------------------------------------------------------------

    def configure_optimizers(self):
        optimizers = []
        for module, interval in [(self.G, self.hparams.G_reg_interval), (self.D, self.hparams.D_reg_interval)]:
            # Lazy regularization: the main and reg steps together should move the weights like one step would.
            ratio = interval / (interval + 1)
            kw = self.hparams.optim_kwargs
            optimizers.append(torch.optim.Adam(module.parameters(), lr=kw["lr"] * ratio,
                                               betas=[beta**ratio for beta in kw["betas"]], eps=kw["eps"]))
        return optimizers

    def configure_layout(self, device: torch.device) -> None:
        """Float32 blocks of G and D channels-last or not: the configured choice, or (None) on CPU only, where
        oneDNN's channels-last convolutions are ~13% faster for the same numbers up to rounding."""
        channels_last = self.hparams.fp32_channels_last
        if channels_last is None:
            channels_last = device.type == "cpu"
        for net in (self.G, self.D):
            set_block_options(net, fp32_channels_last=channels_last)

    def on_fit_start(self) -> None:
        self.configure_layout(self.device)
        dataset = self.trainer.datamodule.dataset if self.trainer.datamodule is not None else None
        if self.G.c_dim > 0:
            if dataset is None or dataset.label_dim != self.G.c_dim:
                raise ConfigError(f"the generator is conditional (c_dim={self.G.c_dim}) but the dataset has "
                                  f"{getattr(dataset, 'label_dim', 0)} label dimensions; set dataset.use_labels")
            labels = [torch.as_tensor(dataset.get_label(i)) for i in range(len(dataset))]
            self.label_bank = torch.stack(labels).to(self.device, torch.float32)
        world = self.trainer.world_size
        if self.hparams.batch_size % (self.hparams.batch_gpu * world) != 0:
            raise ConfigError(f"batch_size {self.hparams.batch_size} must be a multiple of batch_gpu "
                              f"{self.hparams.batch_gpu} x {world} devices; change batch_size or batch_gpu")
        self._tick_start_nimg = int(self.cur_nimg)
        self._tick_start_time = self._start_time = time.time()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real_img, real_c = batch
        real_img = real_img.to(torch.float32) / 127.5 - 1
        rank, world = self.global_rank, self.trainer.world_size
        opt_G, opt_D = self.optimizers()
        self.run_iteration(real_img, real_c.to(torch.float32), self.draw_phase_inputs(rank, world),
                           {"G": opt_G, "D": opt_D})
        self._maybe_tick()
        if self.done:
            self.trainer.should_stop = True

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["phase_input_sampler"] = self.sampler.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "phase_input_sampler" in checkpoint:
            self.sampler.load_state_dict(checkpoint["phase_input_sampler"], self.device)

    # --- One official iteration ---------------------------------------------------------------------------------

    def draw_phase_inputs(self, rank: int, world_size: int) -> dict[str, list[RoundInputs]]:
        """The random inputs of every phase due this iteration: the global batch's draws, this rank's slices."""
        return {phase.name: self.sampler.draw(phase.name, self.G, self.hparams.batch_size, self.hparams.batch_gpu,
                                              rank, world_size, self.label_bank, self.loss.style_mixing_prob,
                                              self.device)
                for phase in self.phases if self._phase_due(phase)}

    def _phase_due(self, phase: Phase) -> bool:
        return int(self.batch_idx) % phase.interval == 0 and self.loss.phase_active(phase.name)

    def run_iteration(self, real_img: torch.Tensor, real_c: torch.Tensor,
                      phase_inputs: dict[str, list[RoundInputs]], optimizers: dict) -> None:
        """All due phases, the G_ema update, the counters and ADA. `real_img` is this rank's batch in [-1, 1]."""
        real_rounds = list(zip(real_img.split(self.hparams.batch_gpu), real_c.split(self.hparams.batch_gpu)))
        reduce_mean = self._reduce_mean if self._distributed else None
        for phase in self.phases:
            if not self._phase_due(phase):
                continue
            module = self.G if phase.network == "G" else self.D
            opt = optimizers[phase.network]
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            for (real, c), inputs in zip(real_rounds, phase_inputs[phase.name]):
                stats = self.loss.accumulate_gradients(phase.name, self.G, self.D, self.augment_pipe, real, c, inputs,
                                                       gain=phase.interval, backward=self._backward,
                                                       reduce_mean=reduce_mean)
                self._record(stats)
            module.requires_grad_(False)
            self._finish_gradients(module)
            opt.step()

        if self._distributed:
            # w_avg moved with each rank's own samples; its update is linear, so the mean over ranks is exactly the
            # update one device would have made with the whole batch.
            self.G.mapping.w_avg.copy_(self._reduce_mean(self.G.mapping.w_avg))
        self._update_ema()
        self.cur_nimg += self.hparams.batch_size
        self.batch_idx += 1
        rt = self.ada.update(self.augment_pipe, int(self.batch_idx), reduce=self._reduce_sum)
        if not torch.isnan(rt):
            self._record({"augment/rt": rt.reshape(1)})

    def _backward(self, loss: torch.Tensor) -> None:
        if self._trainer is not None:
            self.manual_backward(loss)
        else:
            loss.backward()

    @property
    def _distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    def _reduce_sum(self, value: torch.Tensor) -> torch.Tensor:
        if self._distributed:
            value = value.clone()
            dist.all_reduce(value)
        return value

    def _reduce_mean(self, value: torch.Tensor) -> torch.Tensor:
        return self._reduce_sum(value) / dist.get_world_size() if self._distributed else value

    def check_ddp_consistency(self) -> None:
        """Raises if any rank's weights or buffers drifted from rank 0's (they must stay bit-identical)."""
        if not self._distributed:
            return
        for name, tensor in list(self.named_parameters()) + list(self.named_buffers()):
            if tensor.numel() == 0 or name in ("label_bank", "ada.sign_sum", "ada.sign_count"):  # rank-local by design
                continue
            tensor = tensor.detach()
            reference = tensor.clone()
            dist.broadcast(reference, src=0)
            same_nans = torch.equal(tensor.isnan(), reference.isnan())  # NaN is a value here (r_t before the first)
            if not (same_nans and torch.equal(tensor.nan_to_num(), reference.nan_to_num())):
                raise RuntimeError(f"ranks disagree on {name} (rank {dist.get_rank()}): distributed training is out "
                                   f"of sync; please report this with the run's config")

    def _finish_gradients(self, module: torch.nn.Module) -> None:
        """Averages gradients over ranks (one flat all-reduce), then replaces NaN/Inf as the official loop does."""
        params = [p for p in module.parameters() if p.grad is not None]
        if not params:
            return
        if self._distributed:
            flat = torch.cat([p.grad.flatten() for p in params])
            dist.all_reduce(flat)
            flat /= dist.get_world_size()
            for p, g in zip(params, flat.split([p.numel() for p in params])):
                p.grad.copy_(g.reshape(p.shape))
        for p in params:
            torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)

    @torch.no_grad()
    def _update_ema(self) -> None:
        ema_nimg = self.hparams.ema_kimg * 1000
        if self.hparams.ema_rampup is not None:
            ema_nimg = min(ema_nimg, int(self.cur_nimg) * self.hparams.ema_rampup)
        beta = 0.5 ** (self.hparams.batch_size / max(ema_nimg, 1e-8))
        ema_params = list(self.G_ema.parameters())
        torch._foreach_lerp_(ema_params, list(self.G.parameters()), 1 - beta)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # --- Statistics, once per tick ------------------------------------------------------------------------------

    def _record(self, stats: dict[str, torch.Tensor]) -> None:
        for name, values in stats.items():
            values = values.to(torch.float64)
            entry = torch.stack([values.sum(), values.square().sum(), torch.tensor(values.numel(), dtype=torch.float64,
                                                                                   device=values.device)])
            self._stats[name] = self._stats[name] + entry if name in self._stats else entry
            if name == "signs/real":
                self.ada.accumulate(values)

    def _maybe_tick(self) -> None:
        tick_nimg = self.hparams.kimg_per_tick * 1000
        if not (self._tick == 0 or self.done or int(self.cur_nimg) >= self._tick_start_nimg + tick_nimg):
            return
        names = sorted(self._stats)
        values: dict[str, float] = {}
        if names:
            totals = self._reduce_sum(torch.stack([self._stats[name] for name in names]))
            for name, (total, total_sq, count) in zip(names, totals.tolist()):
                values[name] = total / max(count, 1)
                if name.startswith("scores/"):
                    values[name.replace("scores/", "scores_std/")] = math.sqrt(max(total_sq / max(count, 1)
                                                                                  - values[name] ** 2, 0))
        self._stats = {}

        now = time.time()
        tick_kimg = (int(self.cur_nimg) - self._tick_start_nimg) / 1000
        sec_per_tick = now - self._tick_start_time
        values.update({
            "progress/tick": self._tick,
            "augment/p": self.augment_p if self.augment_p is not None else 0.0,
            "timing/sec_per_tick": sec_per_tick,
            "timing/sec_per_kimg": sec_per_tick / tick_kimg if tick_kimg > 0 else float("nan"),
            "timing/total_hours": (now - self._start_time) / 3600,
            "resources/peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        })
        if torch.cuda.is_available() and self.device.type == "cuda":
            values["resources/peak_gpu_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
            torch.cuda.reset_peak_memory_stats(self.device)
        if self.trainer is not None and self.trainer.is_global_zero:
            self._write_tick(values)
        log_scalars(self.trainer, values, self.kimg)
        self.tick_values = values
        self._tick += 1
        self._tick_start_nimg = int(self.cur_nimg)
        self._tick_start_time = now

    def _write_tick(self, values: dict[str, float]) -> None:
        """One JSON line per tick in the run folder (the local record that the Figure-4 plot reads)."""
        row = {"kimg": self.kimg, "timestamp": time.time(), **values}
        with open(os.path.join(self.trainer.default_root_dir, "stats.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")
        log.info("tick %-4d kimg %-8.1f sec/kimg %-7.2f G %-7.3f D %-7.3f augment %.3f", self._tick, self.kimg,
                 values["timing/sec_per_kimg"], values.get("loss/G", float("nan")),
                 values.get("loss/D", float("nan")), values["augment/p"])

