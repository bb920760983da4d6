"""The StyleGAN2-ADA LightningModule: G, D and G_ema, trained with the official four-phase schedule.

One training step is one official iteration (`run_iteration`): the due phases (`phases.py`), each accumulating
gradients over `batch_gpu`-sized rounds, reducing them across ranks, cleaning NaN/Inf and stepping its network's
Adam; then the G_ema update, the counters and the ADA adjustment. Intervals, EMA, ADA and stopping are driven by the
module's own counters (`cur_nimg`, `batch_idx`): Lightning's `global_step` counts optimizer steps (2 to 4 per
iteration here). Every constructor argument is a plain value (numbers, strings, lists, dicts of those), so a
checkpoint's hyper-parameters can rebuild the module without naming anything to import.
"""

from __future__ import annotations

import copy
import logging

import pytorch_lightning as pl
import torch

from stylefuse.augment.ada import AdaController
from stylefuse.augment.pipe import AugmentPipe
from stylefuse.networks.snapshot import read_checkpoint
from stylefuse.nn import Discriminator, Generator, set_block_options
from stylefuse.training import ddp
from stylefuse.training.compile import MainPhaseForwards, resolve_compile
from stylefuse.training.ema import ema_beta, update_ema
from stylefuse.training.loss import RoundInputs, StyleGAN2Loss
from stylefuse.training.phases import Phase, PhaseInputSampler, due_phases, official_phases
from stylefuse.training.ticks import RunningStats

log = logging.getLogger(__name__)

# Buffers that hold per-rank values by design (not compared across ranks).
_RANK_LOCAL = {"label_bank", "ada.sign_sum", "ada.sign_count"}
# The persistent ones: checkpointed per rank (Lightning's state dict holds rank 0's only).
_RANK_ACCUMULATORS = ("ada.sign_sum", "ada.sign_count")


class StyleGAN2Module(pl.LightningModule):
    def __init__(
        self,
        G_kwargs: dict,                      # Generator constructor arguments (official names).
        D_kwargs: dict,                      # Discriminator constructor arguments (official names).
        loss_kwargs: dict,                   # StyleGAN2Loss arguments: r1_gamma, style_mixing_prob, pl_weight, ...
        optim_kwargs: dict,                  # Adam arguments before lazy-regularization scaling: lr, betas, eps.
        batch_size: int,                     # Images per iteration over all ranks.
        batch_gpu: int,                      # Images per accumulation round on each rank.
        total_kimg: float,                   # Training length.
        augment_kwargs: dict | None = None,  # AugmentPipe arguments (probability multipliers, strengths); None = none.
        augment_p: float = 0.0,              # Augmentation probability at the start of training.
        ada_kwargs: dict | None = None,      # AdaController arguments: mode (ada|fixed|noaug), target, interval, kimg.
        G_reg_interval: int = 4,             # Lazy regularization interval of G (path length).
        D_reg_interval: int = 16,            # Lazy regularization interval of D (R1).
        ema_kimg: float = 10,                # Half-life of the G_ema average, in thousands of images.
        ema_rampup: float | None = None,     # EMA ramp-up: half-life at most cur_nimg * ema_rampup, None = none.
        seed: int = 0,                       # Seed of the latent/label sampler (identical on every rank).
        training_set_kwargs: dict | None = None,  # How to rebuild the training set (saved with the networks).
        fp32_channels_last: bool | None = False,  # float32 blocks of G and D channels-last; None = on CPU only.
        fp16_dtype: str = "float16",              # dtype of the fp16 blocks: float16 (official) or bfloat16.
        compile_main_phases: str | bool = False,  # torch.compile Gmain and Dmain: true, false or auto (CUDA only).
    ):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        assert batch_size % batch_gpu == 0, "the builders check the batch split (training.builders.check_batch)"

        self.G = Generator(**copy.deepcopy(G_kwargs)).train().requires_grad_(False)
        self.D = Discriminator(**copy.deepcopy(D_kwargs)).train().requires_grad_(False)
        for net in (self.G, self.D):
            set_block_options(net, fp16_dtype=fp16_dtype)
        if fp32_channels_last is not None:
            self.configure_layout(torch.device("cpu"))
        self.G_ema = copy.deepcopy(self.G).eval()
        self.loss = StyleGAN2Loss(**loss_kwargs)
        self.augment_pipe = None
        if augment_kwargs is not None:
            self.augment_pipe = AugmentPipe(**augment_kwargs).train().requires_grad_(False)
            self.augment_pipe.p.fill_(augment_p)
        self.ada = AdaController(**(ada_kwargs or {"mode": "noaug"}), batch_size=batch_size)

        self.phases = official_phases(G_reg_interval, D_reg_interval)
        self.sampler = PhaseInputSampler(seed)
        self.register_buffer("cur_nimg", torch.zeros([], dtype=torch.int64))
        self.register_buffer("batch_idx", torch.zeros([], dtype=torch.int64))
        self.register_buffer("label_bank", torch.zeros([0, self.G.c_dim]), persistent=False)
        self.running_stats = RunningStats()  # reported and reset once per tick (training.ticks.TickCallback)
        self.main_forwards: MainPhaseForwards | None = None  # set for the device by configure_compile
        self._restore: dict | None = None    # checkpoint parts put back when training starts (on_train_start)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args, **kwargs):
        """Lightning's loader behind stylefuse's checks: the file is read first by the restricted reader (a
        checkpoint that is not plain data, or whose G/D kwargs no StyleGAN2 has, is one NetworkFileError), then by
        torch.load with weights_only=True, whatever torch's defaults or environment say."""
        read_checkpoint(checkpoint_path)
        return super().load_from_checkpoint(checkpoint_path, *args, **{**kwargs, "weights_only": True})

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

    def configure_compile(self, device: torch.device) -> None:
        """How the main phases run G's synthesis and D on `device`: compiled or eager (`compile_main_phases`)."""
        compiled = resolve_compile(self.hparams.compile_main_phases, device)
        self.main_forwards = MainPhaseForwards(self.G, self.D, compiled)

    def on_fit_start(self) -> None:
        self.configure_layout(self.device)
        self.configure_compile(self.device)
        if self.G.c_dim > 0:
            dataset = self.trainer.datamodule.dataset
            labels = [torch.as_tensor(dataset.get_label(i)) for i in range(len(dataset))]
            self.label_bank = torch.stack(labels).to(self.device, torch.float32)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real_img, real_c = batch
        real_img = real_img.to(torch.float32) / 127.5 - 1
        opt_G, opt_D = self.optimizers()
        inputs = self.draw_phase_inputs(self.due_phases(int(self.batch_idx)), self.global_rank,
                                        self.trainer.world_size)
        self.run_iteration(real_img, real_c.to(torch.float32), inputs, {"G": opt_G, "D": opt_D})
        if self.done:
            self.trainer.should_stop = True

    # --- Checkpoints: everything the next iteration depends on ----------------------------------------------------
    # Lightning saves the weights, buffers (counters, pl_mean, p, r_t, rank 0's ADA sums) and optimizer states; the
    # module adds the phase-input sampler and, for every rank, its global random streams (per-pixel noise and the
    # augment pipe draw from them), tick statistics and ADA sign sums. Those are put back when training starts: after
    # the strategy broadcast rank 0's buffers and the data loader started, with nothing else left to draw from them.

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["phase_input_sampler"] = dict(self.sampler.state_dict(), device=self.device.type)
        checkpoint["rank_states"] = ddp.all_gather_object(self._rank_state())  # a collective: every rank saves

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._restore = {key: checkpoint.get(key) for key in ("phase_input_sampler", "rank_states")}

    def on_train_start(self) -> None:
        restore, self._restore = self._restore, None
        if restore is None:
            return
        sampler_state = restore["phase_input_sampler"]
        if sampler_state is not None and sampler_state.get("device", "cpu") == self.device.type:
            self.sampler.load_state_dict(sampler_state, self.device)
        elif sampler_state is not None:
            log.warning("the checkpoint's latents were drawn on %s, training runs on %s: the latent stream starts "
                        "anew (training continues, not bit-identically)", sampler_state["device"], self.device.type)
        if restore["rank_states"] is not None:
            self._load_rank_state(restore["rank_states"])

    def _rank_state(self) -> dict:
        return {
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "running_stats": self.running_stats.state_dict(),
            "accumulators": {name: self.get_buffer(name).detach().cpu() for name in _RANK_ACCUMULATORS},
        }

    def _load_rank_state(self, states: list[dict]) -> None:
        world_size, rank = self.trainer.world_size, self.global_rank
        if len(states) == world_size:
            state = states[rank]
        else:
            # Another number of ranks: the sums stay whole (on rank 0), the random streams start from the seed.
            log.warning("the checkpoint was written by %d ranks and resumes on %d: training continues, not "
                        "bit-identically to an uninterrupted run", len(states), world_size)
            state = {"rng": None, "cuda_rng": None, "running_stats": {}, "accumulators": {}}
            if rank == 0:
                for saved in states:
                    for part in ("running_stats", "accumulators"):
                        for name, value in saved[part].items():
                            state[part][name] = state[part].get(name, 0) + value
        if state["rng"] is not None:
            torch.set_rng_state(state["rng"])
        if state["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.running_stats.load_state_dict(state["running_stats"], self.device)
        for name in _RANK_ACCUMULATORS:
            self.get_buffer(name).copy_(torch.as_tensor(state["accumulators"].get(name, 0.0)))

    # --- One official iteration (public: the bench and the tests drive it directly) ----------------------------

    def due_phases(self, batch_idx: int) -> list[Phase]:
        """The phases iteration `batch_idx` runs."""
        return due_phases(self.phases, batch_idx, self.loss)

    def draw_phase_inputs(self, phases: list[Phase], rank: int, world_size: int) -> dict[str, list[RoundInputs]]:
        """The random inputs of `phases`: the global batch's draws, this rank's slices."""
        return {phase.name: self.sampler.draw(phase.name, self.G, self.hparams.batch_size, self.hparams.batch_gpu,
                                              rank, world_size, self.label_bank, self.loss.style_mixing_prob,
                                              self.device)
                for phase in phases}

    def run_iteration(self, real_img: torch.Tensor, real_c: torch.Tensor,
                      phase_inputs: dict[str, list[RoundInputs]], optimizers: dict) -> None:
        """The phases of `phase_inputs` (in the official order), the G_ema update, the counters and ADA.
        `real_img` is this rank's batch in [-1, 1]."""
        real_rounds = list(zip(real_img.split(self.hparams.batch_gpu), real_c.split(self.hparams.batch_gpu)))
        reduce_mean = ddp.reduce_mean if ddp.is_distributed() else None
        for phase in self.phases:
            if phase.name not in phase_inputs:
                continue
            module = self.G if phase.network == "G" else self.D
            opt = optimizers[phase.network]
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            for (real, c), inputs in zip(real_rounds, phase_inputs[phase.name]):
                outputs = self.loss.accumulate_gradients(phase.name, self.G, self.D, self.augment_pipe, real, c,
                                                         inputs, gain=phase.interval, backward=self._backward,
                                                         reduce_mean=reduce_mean, main_forwards=self.main_forwards)
                self.running_stats.add(outputs.stats)
                if outputs.real_logits is not None:
                    self.ada.accumulate(outputs.real_logits)
            module.requires_grad_(False)
            self._finish_gradients(module)
            opt.step()

        if ddp.is_distributed():
            # w_avg moved with each rank's own samples; its update is linear, so the mean over ranks is exactly the
            # update one device would have made with the whole batch.
            self.G.mapping.w_avg.copy_(ddp.reduce_mean(self.G.mapping.w_avg))
        update_ema(self.G_ema, self.G, ema_beta(self.hparams.batch_size, self.hparams.ema_kimg,
                                                self.hparams.ema_rampup, int(self.cur_nimg)))
        self.cur_nimg += self.hparams.batch_size
        self.batch_idx += 1
        rt = self.ada.update(self.augment_pipe, int(self.batch_idx), reduce=ddp.reduce_sum)
        if not torch.isnan(rt):
            self.running_stats.add({"augment/rt": rt.reshape(1)})

    def _backward(self, loss: torch.Tensor) -> None:
        if self._trainer is not None:
            self.manual_backward(loss)
        else:
            loss.backward()

    def _finish_gradients(self, module: torch.nn.Module) -> None:
        """Averages gradients over ranks, then replaces NaN/Inf as the official loop does."""
        params = [p for p in module.parameters() if p.grad is not None]
        ddp.all_reduce_gradients(params)
        for p in params:
            torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)

    # --- Distributed training -----------------------------------------------------------------------------------

    def check_ddp_consistency(self) -> None:
        """Raises if any rank's weights or buffers drifted from rank 0's (they must stay bit-identical)."""
        ddp.check_replicas_in_sync(list(self.named_parameters()) + list(self.named_buffers()), _RANK_LOCAL)
