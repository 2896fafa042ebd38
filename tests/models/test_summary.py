"""Parameter counting and the start-up summary."""

import torch

from scoresde.models import MLP, UNet, count_parameters, summarize


def test_count_parameters_by_hand():
    lin = torch.nn.Linear(3, 4)
    assert count_parameters(lin) == 3 * 4 + 4
    lin.bias.requires_grad_(False)
    assert count_parameters(lin) == 12 and count_parameters(lin, trainable_only=False) == 16


def test_summarize_restores_mode_and_reports():
    net = UNet((1, 8, 8), channels=8, norm_groups=4).train()
    s = summarize(net, (1, 8, 8), batch_size=4, repeats=2)
    assert net.training
    assert s.num_parameters == count_parameters(net) and s.batch_size == 4 and s.forward_ms > 0
    assert s.threads == torch.get_num_threads() and s.device == "cpu"
    assert f"{s.num_parameters:,} parameters" in str(s)
    assert summarize(MLP((2,), width=8, num_blocks=1, embed_dim=4), (2,), batch_size=3, repeats=1).num_parameters > 0
