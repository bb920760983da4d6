"""The phase schedule: which phases an iteration runs."""

from __future__ import annotations

from stylefuse.training.loss import StyleGAN2Loss
from stylefuse.training.phases import due_phases, official_phases


def test_phases_run_on_their_intervals():
    phases = official_phases(G_reg_interval=4, D_reg_interval=16)
    ran = {b: [p.name for p in due_phases(phases, b, StyleGAN2Loss())] for b in range(17)}
    assert ran[0] == ["Gmain", "Greg", "Dmain", "Dreg"]
    assert ran[4] == ["Gmain", "Greg", "Dmain"] and ran[8] == ["Gmain", "Greg", "Dmain"]
    assert ran[1] == ran[3] == ran[15] == ["Gmain", "Dmain"]
    assert ran[16] == ["Gmain", "Greg", "Dmain", "Dreg"]


def test_regularization_with_zero_weight_never_runs():
    phases = official_phases(G_reg_interval=4, D_reg_interval=16)
    assert [p.name for p in due_phases(phases, 0, StyleGAN2Loss(r1_gamma=0, pl_weight=0))] == ["Gmain", "Dmain"]
