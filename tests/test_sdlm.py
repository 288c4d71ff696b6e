"""LeNet-5's own optimizer: stochastic diagonal Levenberg-Marquardt (LeCun et al. 1998, Appendix C),
the ``sdlm`` optimizer of the emitted training scripts (``SDLM`` and ``gauss_newton_diagonal`` in
templates/train.py.j2, the runtime archspec_train.py), and the paper's recipe in specs/lenet5.yaml.

Budget (2 busy CPU cores): the paper's recipe, its first 5 passes at batch 1, ~80 s; the resume
test ~20 s; the rest a few seconds.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from archspec.cli.main import app
from tests.test_train import HEAD, LENET, load_script, weights

MOD = load_script(LENET)
RT, NET = MOD.load_runtime(), MOD.network()  # archspec_train.py beside it, and its LeNet-5


def tiny() -> nn.Module:
    """A shared (convolution) weight, a tanh, a max pool and a linear layer: 1x6x6 -> 3 scores."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3))


def brute_force_gauss_newton_diagonal(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """diag(J^T (diag(p) - p p^T) J) averaged over the patterns, from the full Jacobian J of each
    pattern's scores and the full Gauss-Newton matrix, in float64."""
    model = model.double()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])

    def scores(theta: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        ps, at = {}, 0
        for n, shape in zip(names, shapes):
            ps[n] = theta[at:at + shape.numel()].view(shape)
            at += shape.numel()
        return torch.func.functional_call(model, ps, (xi[None],))[0]

    total = torch.zeros(len(flat), dtype=torch.float64)
    for xi in x.double():
        jac = torch.autograd.functional.jacobian(lambda t: scores(t, xi), flat)  # (K, P)
        p = torch.softmax(scores(flat, xi), 0)
        gn = jac.T @ (torch.diag(p) - torch.outer(p, p)) @ jac  # (P, P)
        total += torch.diagonal(gn)
    total /= len(x)
    model.float()
    out, at = [], 0
    for shape in shapes:
        out.append(total[at:at + shape.numel()].view(shape).float())
        at += shape.numel()
    return out


def test_exact_estimate_is_the_gauss_newton_diagonal():
    model, x = tiny(), torch.randn(7, 1, 6, 6)
    opt = RT.SDLM(model.parameters(), lr=0.1, mu=0.02)
    opt.estimate(model, x, exact=True)
    expected = brute_force_gauss_newton_diagonal(model, x)
    for p, h in zip(model.parameters(), expected):
        torch.testing.assert_close(opt.hessian(p), h, rtol=1e-4, atol=1e-8)
        assert (opt.hessian(p) >= 0).all()
    assert model.training  # the estimate runs in eval mode and restores the mode


def test_for_a_linear_model_gauss_newton_is_the_hessian():
    """Without hidden units the Gauss-Newton matrix is the Hessian of the cross-entropy itself:
    h_kk is then the loss's true second derivative in w_k (labels do not enter it)."""
    torch.manual_seed(1)
    model, x = nn.Linear(5, 4), torch.randn(6, 5)
    y = torch.randint(0, 4, (6,))
    opt = RT.SDLM(model.parameters(), lr=0.1)
    opt.estimate(model, x, exact=True)
    w, b = model.weight.detach().clone(), model.bias.detach().clone()
    hw = torch.autograd.functional.hessian(lambda w: F.cross_entropy(F.linear(x, w, b), y), w)
    hb = torch.autograd.functional.hessian(lambda b: F.cross_entropy(F.linear(x, w, b), y), b)
    torch.testing.assert_close(opt.hessian(model.weight), torch.einsum("ijij->ij", hw), rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(opt.hessian(model.bias), torch.diagonal(hb), rtol=1e-4, atol=1e-8)


def test_sampled_estimate_is_unbiased():
    """The default estimate (one class c ~ p per pattern) averages to the exact diagonal."""
    model, x = tiny(), torch.randn(4, 1, 6, 6)
    exact = RT.gauss_newton_diagonal(model, dict(model.named_parameters()), x, exact=True)
    torch.manual_seed(2)
    sampled = RT.gauss_newton_diagonal(model, dict(model.named_parameters()), x.repeat(4000, 1, 1, 1))
    for n in exact:
        torch.testing.assert_close(sampled[n], exact[n], rtol=0.1, atol=1e-6)


def test_step_is_lr_over_mu_plus_h_times_the_gradient():
    model, x = tiny(), torch.randn(5, 1, 6, 6)
    opt = RT.SDLM(model.parameters(), lr=0.0005, mu=0.02)
    opt.estimate(model, x)
    before = [p.detach().clone() for p in model.parameters()]
    F.cross_entropy(model(x), torch.tensor([0, 1, 2, 0, 1])).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    for p, w, g in zip(model.parameters(), before, grads):
        h = opt.hessian(p)
        assert h.abs().sum() > 0
        assert torch.equal(p.detach(), w - (0.0005 / (0.02 + h)) * g)
    # before any estimate h_kk = 0: the step is lr / mu times the gradient
    model = tiny()
    opt = RT.SDLM(model.parameters(), lr=0.001, mu=0.5)
    w = model[4].bias.detach().clone()
    model[4].bias.grad = torch.ones(3)
    opt.step()
    assert torch.equal(model[4].bias.detach(), w - 0.001 / (0.5 + torch.zeros(3)) * torch.ones(3))


def test_hessian_is_optimizer_state():
    model, x = tiny(), torch.randn(5, 1, 6, 6)
    opt = RT.SDLM(model.parameters(), lr=0.01)
    opt.estimate(model, x)
    other = tiny()
    again = RT.SDLM(other.parameters(), lr=0.01)
    again.load_state_dict(opt.state_dict())
    for p, q in zip(model.parameters(), other.parameters()):
        assert torch.equal(opt.hessian(p), again.hessian(q))


# ------------------------------------------------------------------------ recipe and script
def test_lenet5_recipe_is_the_papers():
    r = MOD.RECIPE
    assert (r["optimizer"], r["mu"], r["hessian_samples"], r["batch_size"], r["epochs"]) == ("sdlm", 0.02, 500, 1, 20)
    assert r["hessian"] == "paper"
    args = RT.parse_args(NET, [])
    assert args.hessian == "paper"
    opt = RT.make_optimizer(args, tiny(), torch.device("cpu"))
    assert type(opt) is RT.SDLM and (opt.defaults["lr"], opt.defaults["mu"]) == (0.0005, 0.02)
    args = RT.parse_args(NET, ["--mu", "0.1", "--hessian-samples", "30"])
    assert (args.mu, args.hessian_samples) == (0.1, 30)


@pytest.mark.parametrize("body, col, path, message", [
    ("train:\n  mu: 0\n", 7, "train.mu", "greater than 0"),
    ("train:\n  hessian_samples: 0\n", 20, "train.hessian_samples", "greater than 0"),
    ("train:\n  hessian_samples: 2.5\n", 20, "train.hessian_samples", "integer"),
])
def test_sdlm_keys_are_validated(tmp_path, body, col, path, message):
    spec = tmp_path / "spec.yaml"
    spec.write_text(HEAD + "num_classes: 3\n" + body)
    result = CliRunner().invoke(app, ["stats", str(spec)])
    assert result.exit_code == 1, result.output
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith(f"{spec}:6:{col}: error: {path}: ") and message in first, first
    assert "Traceback" not in result.stderr


def test_bad_sdlm_flags_are_one_line(capsys):
    for argv, text in ((["--mu", "0"], "argument --mu: 0 is not greater than 0"),
                       (["--hessian-samples", "0"], "argument --hessian-samples: 0 is not at least 1")):
        with pytest.raises(SystemExit) as e:
            MOD.main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and text in err[0], err


def test_sdlm_resume_equals_uninterrupted_run(tmp_path, capsys):
    """h_kk travels in the checkpoint: a run resumed after epoch 1 ends where a straight one does
    (and an SDLM checkpoint is not resumed by another optimizer)."""
    argv = ["--batch-size", "16", "--hessian-samples", "64", "--no-plot", "--deterministic", "--threads", "1"]
    MOD.main(argv + ["--epochs", "1", "--out-dir", str(tmp_path / "a")])
    state = torch.load(tmp_path / "a/checkpoint.pt", weights_only=True)
    assert state["optimizer_class"] == "SDLM"
    assert all("hessian" in s for s in state["optimizer"]["state"].values())
    MOD.main(argv + ["--epochs", "2", "--out-dir", str(tmp_path / "a"), "--resume"])
    MOD.main(argv + ["--epochs", "2", "--out-dir", str(tmp_path / "b")])
    a, b = weights(tmp_path / "a/checkpoint.pt"), weights(tmp_path / "b/checkpoint.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    capsys.readouterr()
    with pytest.raises(SystemExit):
        MOD.main(argv + ["--optimizer", "sgd", "--out-dir", str(tmp_path / "a"), "--resume"])
    assert "holds the state of a SDLM optimizer" in capsys.readouterr().err


def test_lenet5_paper_recipe_reaches_97_percent(tmp_path):
    """The issue's acceptance run, ``python generated/train_lenet5.py`` with no flags (SDLM, batch 1,
    the five-step schedule, 20 passes: 97.49 %, 310 s on 2 busy cores — docs/benchmarks.md), cut to
    its first 5 passes to fit CI: the schedule counts epochs, so they are exactly the full run's
    first 5 (0.0005 for 2, 0.0002 for 3; 97.77 % there). At batch 1 on the CPU the script runs on
    one intra-op thread (more only contend: 2 threads on a busy 2-core machine, ~50x slower), and
    gives torch its thread count back at the end."""
    threads = torch.get_num_threads()
    summary = MOD.main(["--epochs", "5", "--out-dir", str(tmp_path / "run"), "--no-plot"])
    assert torch.get_num_threads() == threads
    assert summary["steps"] == 5 * 1438
    assert summary["val_top1"] >= 97.0, summary


def test_threads_at_batch_1_on_the_cpu(monkeypatch):
    """One intra-op thread for one image per step on the CPU (more only contend), --threads to
    choose; torch's own count otherwise; close() gives the count back."""
    seen = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.append(n))
    for argv, want in (([], [1]), (["--batch-size", "2"], []), (["--batch-size", "16", "--threads", "3"], [3]),
                       (["--batch-size", "4", "--accum-steps", "4"], [1])):
        seen.clear()
        rt = RT.Runtime(RT.parse_args(NET, argv + ["--device", "cpu"]))
        assert seen == want, argv
        rt.close()
        assert seen[-1] == rt.threads


# --- the paper's own estimate (Appendix C): second derivatives back-propagated diagonally ---------

def paper_rule_by_hand_mlp(net: nn.Sequential, x: torch.Tensor) -> dict:
    """Appendix C written out for Flatten -> Linear -> Tanh -> Linear, per pattern, in float64:
    d2E/dz^2 = p(1-p); W2: z-curvature x y1^2; y1: sum_i w_ij^2 d2E/dz_i^2; a1: tanh'(a1)^2 x that;
    W1: a1-curvature x x^2; a bias: the curvature of its unit."""
    lin1, lin2 = net[1].double(), net[3].double()
    xf = x.double().flatten(1)
    a1 = lin1(xf)
    y1 = torch.tanh(a1)
    p = torch.softmax(lin2(y1), 1)
    hz = p - p * p
    hy1 = torch.einsum("ij,ni->nj", lin2.weight ** 2, hz)
    ha1 = (1 - y1 ** 2) ** 2 * hy1
    n = len(x)
    out = {"1.weight": torch.einsum("nj,nk->jk", ha1, xf ** 2) / n, "1.bias": ha1.sum(0) / n,
           "3.weight": torch.einsum("ni,nj->ij", hz, y1 ** 2) / n, "3.bias": hz.sum(0) / n}
    net.float()
    return {k: v.detach().float() for k, v in out.items()}


def paper_rule_by_hand_conv(net: nn.Sequential, x: torch.Tensor) -> dict:
    """Appendix C for Conv2d -> Flatten -> Linear: a shared convolution weight sums x^2 times its
    unit's curvature over its connections (every output position), with no cross terms."""
    conv, lin = net[0].double(), net[2].double()
    x = x.double()
    a = conv(x)
    p = torch.softmax(lin(a.flatten(1)), 1)
    hz = p - p * p
    ha = torch.einsum("ij,ni->nj", lin.weight ** 2, hz).view_as(a)
    cols = F.unfold(x ** 2, conv.kernel_size)  # (N, C*k*k, positions)
    n = len(x)
    out = {"0.weight": torch.einsum("nol,ncl->oc", ha.flatten(2), cols).view_as(conv.weight) / n,
           "0.bias": ha.sum((0, 2, 3)) / n,
           "2.weight": torch.einsum("ni,nj->ij", hz, a.flatten(1) ** 2) / n, "2.bias": hz.sum(0) / n}
    net.float()
    return {k: v.detach().float() for k, v in out.items()}


def test_paper_rule_is_appendix_c_written_out():
    torch.manual_seed(1)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.Tanh(), nn.Linear(7, 5))
    x = torch.randn(9, 3, 4)
    ours = RT.paper_diagonal(mlp, dict(mlp.named_parameters()), x)
    for k, want in paper_rule_by_hand_mlp(mlp, x).items():
        torch.testing.assert_close(ours[k], want, rtol=1e-5, atol=1e-9)
    conv = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
    x = torch.randn(6, 2, 6, 6)
    ours = RT.paper_diagonal(conv, dict(conv.named_parameters()), x)
    for k, want in paper_rule_by_hand_conv(conv, x).items():
        torch.testing.assert_close(ours[k], want, rtol=1e-5, atol=1e-9)


def test_paper_rule_is_gauss_newton_where_nothing_is_dropped():
    """One linear layer into the loss: no shared weights, no hidden units, so the paper's
    diagonal and the exact Gauss-Newton diagonal are the same numbers."""
    torch.manual_seed(2)
    net = nn.Sequential(nn.Flatten(), nn.Linear(10, 4))
    x = torch.randn(8, 2, 5)
    ours = RT.paper_diagonal(net, dict(net.named_parameters()), x)
    for (k, _), want in zip(net.named_parameters(), brute_force_gauss_newton_diagonal(net, x)):
        torch.testing.assert_close(ours[k], want, rtol=1e-4, atol=1e-8)


def test_paper_rule_drops_the_cross_terms_of_a_shared_weight():
    """On a convolution (shared weights) the two estimates differ, as Appendix C says they do:
    the paper squares each connection's contribution, Gauss-Newton squares their sum."""
    net = tiny()
    x = torch.randn(16, 1, 6, 6)
    paper = RT.paper_diagonal(net, dict(net.named_parameters()), x)
    exact = dict(zip([n for n, _ in net.named_parameters()], brute_force_gauss_newton_diagonal(net, x)))
    assert not torch.allclose(paper["0.weight"], exact["0.weight"], rtol=1e-2)
    torch.testing.assert_close(paper["4.weight"], exact["4.weight"], rtol=1e-4, atol=1e-8)  # the last layer: same


def test_lenet5_estimate_uses_the_paper_rule_and_falls_back_by_name():
    torch.manual_seed(3)
    model = RT.load_model_module(NET).build()
    opt = RT.SDLM(model.parameters(), lr=1e-3)
    x = torch.randn(20, 1, 32, 32)
    assert opt.estimate(model, x, rule="paper") is None
    want = RT.paper_diagonal(model, dict(model.named_parameters()), x)
    for n, p in model.named_parameters():
        torch.testing.assert_close(opt.hessian(p), want[n])

    class Odd(nn.Module):  # a layer the rule does not cover: layer norm
        def __init__(self):
            super().__init__()
            self.norm, self.fc = nn.LayerNorm(6), nn.Linear(6, 3)

        def forward(self, x):
            return self.fc(self.norm(x))

    odd = Odd()
    opt = RT.SDLM(odd.parameters(), lr=1e-3)
    xs = torch.randn(5, 6)
    torch.manual_seed(4)
    why = opt.estimate(odd, xs, rule="paper")
    assert why == "the paper's rule does not cover LayerNorm (norm)"
    torch.manual_seed(4)  # the same classes drawn: h_kk is gauss-newton's estimate, exactly
    want = RT.gauss_newton_diagonal(odd, dict(odd.named_parameters()), xs)
    for n, p in odd.named_parameters():
        torch.testing.assert_close(opt.hessian(p), want[n], rtol=0, atol=0)
