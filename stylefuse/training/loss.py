"""StyleGAN2 losses for the four training phases (no Lightning here: the training module orchestrates).

Gmain: non-saturating logistic loss. Greg: path-length regularization. Dmain: logistic loss on fakes and reals.
Dreg: lazy R1 penalty on reals. Every loss is backpropagated as `loss.mean() * gain`, gain being the phase interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stylefuse.nn import Discriminator, Generator
from stylefuse.training.compile import MainPhaseForwards

PHASES = ("Gmain", "Greg", "Dmain", "Dreg")


@dataclass
class RoundInputs:
    """Everything random that one accumulation round of a phase consumes, drawn by the caller.

    Drawing these outside the loss lets every rank draw the same global batch and take its own slice, so that N
    ranks compute what one device computes on the whole batch (and lets tests pass the official tensors).
    """

    gen_z: torch.Tensor                    # [n, z_dim]
    gen_c: torch.Tensor                    # [n, c_dim]
    mix_z: torch.Tensor | None = None      # [n, z_dim] latents for style mixing
    mix_cutoff: int | None = None          # first layer taken from mix_z; None = no mixing this round
    pl_noise: torch.Tensor | None = None   # [n_pl, C, H, W] path-length noise, already divided by sqrt(H*W)


@dataclass
class RoundOutputs:
    """What one accumulation round reports: per-sample statistics to log (detached, flat) and D's logits on the
    real images (Dmain and Dreg), the measurement ADA's heuristic feeds on."""

    stats: dict[str, torch.Tensor]
    real_logits: torch.Tensor | None = None   # [n, 1], detached


class StyleGAN2Loss(torch.nn.Module):
    """The official StyleGAN2-ADA loss. Holds the path-length running mean `pl_mean` as a (checkpointed) buffer."""

    def __init__(
        self,
        r1_gamma: float = 10,              # R1 regularization weight (the penalty is scaled by gamma / 2).
        style_mixing_prob: float = 0.9,    # Probability of style mixing per round.
        pl_weight: float = 2,              # Path-length regularization weight, 0 = disable.
        pl_batch_shrink: int = 2,          # Path-length regularization uses batch // pl_batch_shrink samples.
        pl_decay: float = 0.01,            # Decay of the path-length running mean.
    ):
        super().__init__()
        self.r1_gamma = r1_gamma
        self.style_mixing_prob = style_mixing_prob
        self.pl_weight = pl_weight
        self.pl_batch_shrink = pl_batch_shrink
        self.pl_decay = pl_decay
        self.register_buffer("pl_mean", torch.zeros([]))

    def phase_active(self, phase: str) -> bool:
        """A regularization phase with zero weight produces no gradients at all (the optimizer skips it)."""
        if phase == "Greg":
            return self.pl_weight != 0
        if phase == "Dreg":
            return self.r1_gamma != 0
        return True

    def run_G(self, G: Generator, z: torch.Tensor, c: torch.Tensor, mix_z: torch.Tensor | None = None,
              mix_cutoff: int | None = None,
              synthesis: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`synthesis`: how to run G.synthesis (its compiled forward in the main phases); None = the module."""
        ws = G.mapping(z, c)
        if mix_cutoff is not None:
            # Style mixing: layers from the cutoff on come from a second latent (which does not move w_avg).
            mixed = G.mapping(mix_z, c, skip_w_avg_update=True)
            ws = torch.cat([ws[:, :mix_cutoff], mixed[:, mix_cutoff:]], dim=1)
        img = (synthesis or G.synthesis)(ws)
        return img, ws

    @staticmethod
    def run_D(D: Discriminator | Callable[..., torch.Tensor], augment_pipe: torch.nn.Module | None, img: torch.Tensor,
              c: torch.Tensor) -> torch.Tensor:
        # Augmentations apply to every image D sees, real or fake, in every phase (so they do not leak into G).
        if augment_pipe is not None:
            img = augment_pipe(img)
        return D(img, c)

    def accumulate_gradients(
        self,
        phase: str,
        G: Generator,
        D: Discriminator,
        augment_pipe: torch.nn.Module | None,
        real_img: torch.Tensor,            # [n, C, H, W] in [-1, 1]
        real_c: torch.Tensor,              # [n, c_dim]
        inputs: RoundInputs,
        gain: float,
        backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
        reduce_mean: Callable[[torch.Tensor], torch.Tensor] | None = None,
        main_forwards: MainPhaseForwards | None = None,
    ) -> RoundOutputs:
        """Runs one round of `phase` and backpropagates it.

        `reduce_mean` averages a scalar over all ranks (identity on one device); it keeps the path-length mean
        identical across ranks. `main_forwards`: how Gmain and Dmain run G's synthesis and D (compiled or not);
        None = the modules. Greg and Dreg always run the modules (they differentiate twice).
        """
        assert phase in PHASES, f"unknown phase {phase!r}"
        synthesis, discriminator = G.synthesis, D
        if main_forwards is not None and phase in ("Gmain", "Dmain"):
            synthesis, discriminator = main_forwards.synthesis, main_forwards.discriminator
        stats: dict[str, torch.Tensor] = {}
        real_logits = None

        if phase == "Gmain":
            gen_img, _ = self.run_G(G, inputs.gen_z, inputs.gen_c, inputs.mix_z, inputs.mix_cutoff, synthesis)
            gen_logits = self.run_D(discriminator, augment_pipe, gen_img, inputs.gen_c)
            loss_Gmain = F.softplus(-gen_logits)  # -log(sigmoid(logits))
            backward(loss_Gmain.mean().mul(gain))
            stats.update({"scores/fake": gen_logits, "signs/fake": gen_logits.sign(), "loss/G": loss_Gmain})

        if phase == "Greg":
            stats.update(self._path_length(G, inputs, gain, backward, reduce_mean))

        if phase == "Dmain":
            gen_img, _ = self.run_G(G, inputs.gen_z, inputs.gen_c, inputs.mix_z, inputs.mix_cutoff, synthesis)
            gen_logits = self.run_D(discriminator, augment_pipe, gen_img.detach(), inputs.gen_c)
            loss_Dgen = F.softplus(gen_logits)  # -log(1 - sigmoid(logits))
            backward(loss_Dgen.mean().mul(gain))
            stats.update({"scores/fake": gen_logits, "signs/fake": gen_logits.sign()})

        if phase in ("Dmain", "Dreg"):
            do_r1 = phase == "Dreg"
            real = real_img.detach().requires_grad_(do_r1)
            real_logits = self.run_D(discriminator, augment_pipe, real, real_c)
            stats.update({"scores/real": real_logits, "signs/real": real_logits.sign()})
            if do_r1:
                # R1 is the gradient w.r.t. the un-augmented reals, i.e. through the augmentation pipe.
                (r1_grads,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
                r1_penalty = r1_grads.square().sum(dim=[1, 2, 3])
                # The *0 term keeps every D weight in the graph.
                loss = real_logits.squeeze(1) * 0 + r1_penalty * (self.r1_gamma / 2)
                stats.update({"loss/r1_penalty": r1_penalty, "loss/D_reg": r1_penalty * (self.r1_gamma / 2)})
            else:
                loss = F.softplus(-real_logits)
                stats["loss/D"] = loss_Dgen + loss
            backward(loss.mean().mul(gain))

        return RoundOutputs(stats={name: value.detach().flatten() for name, value in stats.items()},
                            real_logits=None if real_logits is None else real_logits.detach())

    def _path_length(self, G: Generator, inputs: RoundInputs, gain: float, backward: Callable[[torch.Tensor], None],
                     reduce_mean: Callable[[torch.Tensor], torch.Tensor] | None) -> dict[str, torch.Tensor]:
        n = inputs.gen_z.shape[0] // self.pl_batch_shrink
        mix_z = inputs.mix_z[:n] if inputs.mix_z is not None else None
        gen_img, gen_ws = self.run_G(G, inputs.gen_z[:n], inputs.gen_c[:n], mix_z, inputs.mix_cutoff)
        pl_noise = inputs.pl_noise[:n]
        (pl_grads,) = torch.autograd.grad((gen_img * pl_noise).sum(), gen_ws, create_graph=True)
        pl_lengths = pl_grads.square().sum(dim=2).mean(dim=1).sqrt()  # [n]

        # The running mean enters the penalty un-detached, so a gradient of weight pl_decay flows through the
        # batch mean. Across ranks that mean is global: its value is all-reduced, and its gradient is applied as
        # the equivalent linear term below, which on one device equals differentiating through the mean.
        batch_mean = pl_lengths.mean().detach()
        if reduce_mean is not None:
            batch_mean = reduce_mean(batch_mean)
        pl_mean_new = self.pl_mean.lerp(batch_mean, self.pl_decay)
        self.pl_mean.copy_(pl_mean_new)
        pl_penalty = (pl_lengths - pl_mean_new).square()
        residual_sum = (pl_lengths.detach() - pl_mean_new).mean()
        if reduce_mean is not None:
            residual_sum = reduce_mean(residual_sum)
        mean_term = 2 * self.pl_decay * residual_sum * pl_lengths
        loss_Gpl = (pl_penalty - mean_term) * self.pl_weight
        backward((gen_img[:, 0, 0, 0] * 0 + loss_Gpl).mean().mul(gain))  # *0 keeps every G weight in the graph
        return {"loss/pl_penalty": pl_penalty, "loss/G_reg": pl_penalty * self.pl_weight}
