"""Optional: tfsonify.explain equals captum on a PyTorch twin with the same weights (<= 1e-4 after normalisation)."""
import numpy as np
import pytest

from explain_models import small_classifier
from tfsonify.explain.methods import explain
from tfsonify.explain.targets import Target

captum_attr = pytest.importorskip("captum.attr")
torch = pytest.importorskip("torch")


def torch_twin(model):
    """The twin of explain_models.small_classifier: Conv1d-ReLU-MaxPool-Conv1d-ReLU-mean-Linear-ReLU-Linear."""
    nn = torch.nn

    class Mean(nn.Module):
        def forward(self, x):
            return x.mean(dim=2)

    class Unsqueeze(nn.Module):
        def forward(self, x):
            return x[:, None, :]

    c1, c2 = model.get_layer("conv1"), model.get_layer("conv2")
    h, o = model.get_layer("hidden"), model.get_layer("logits")
    net = nn.Sequential(Unsqueeze(), nn.Conv1d(1, 6, 9), nn.ReLU(), nn.MaxPool1d(2), nn.Conv1d(6, 5, 5), nn.ReLU(),
                        Mean(), nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        for module, layer in ((net[1], c1), (net[4], c2)):
            module.weight.copy_(torch.from_numpy(np.transpose(layer.kernel.numpy(), (2, 1, 0)).copy()))
            module.bias.copy_(torch.from_numpy(layer.bias.numpy()))
        for module, layer in ((net[7], h), (net[9], o)):
            module.weight.copy_(torch.from_numpy(layer.kernel.numpy().T.copy()))
            module.bias.copy_(torch.from_numpy(layer.bias.numpy()))
    return net.eval()


def _normalised(a):
    a = np.asarray(a, np.float64)
    return a / np.maximum(np.abs(a).max(axis=1, keepdims=True), 1e-30)


def test_methods_equal_captum_on_twin():
    model = small_classifier(0)
    net = torch_twin(model)
    x = np.random.default_rng(7).standard_normal((3, 400)).astype("float32")
    xt = torch.from_numpy(x).requires_grad_(True)
    np.testing.assert_allclose(net(xt).detach().numpy(), model(x).numpy(), atol=1e-5)
    target = 1
    cases = {
        "gradient": lambda: captum_attr.Saliency(net).attribute(xt, target=target, abs=False),
        "gradient_x_input": lambda: captum_attr.InputXGradient(net).attribute(xt, target=target),
        "integrated_gradients": lambda: captum_attr.IntegratedGradients(net).attribute(
            xt, baselines=torch.zeros_like(xt), target=target, n_steps=32, method="gausslegendre"),
        "guided_backprop": lambda: captum_attr.GuidedBackprop(net).attribute(xt, target=target),
        "deconvnet": lambda: captum_attr.Deconvolution(net).attribute(xt, target=target),
        "occlusion": lambda: captum_attr.Occlusion(net).attribute(xt, sliding_window_shapes=(40,), strides=(20,),
                                                                  baselines=0.0, target=target),
    }
    options = {"integrated_gradients": {"steps": 32}, "occlusion": {"window": 40, "stride": 20}}
    for method, theirs in cases.items():
        ours = explain(method, model, x, Target.unit(target), **options.get(method, {})).values
        np.testing.assert_allclose(_normalised(ours), _normalised(theirs().detach().numpy()), atol=1e-4, err_msg=method)
