"""PyTorch definitions of the benchmarked networks, written to match torchvision's
(torchvision is not installable next to the torch used here).

`resnet18`, `resnet50` and `resnet152` follow torchvision.models.resnet (v1.5: the stride
is on the bottleneck's 3x3 conv; convolutions before batch normalisation have no bias; a
1x1 conv + batchnorm projects the shortcut when the shape changes). `mnist_mlp` is the
784-500-500-10 MLP of examples/mnist_mlp.net; `vgg16` torchvision's vgg16.

`netc_params` gives a module's weights under netc's parameter names (with netc's PyTorch
importer), so that the two models can be compared output for output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _projection(cin, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(cin, planes * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _projection(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int], num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        cin = 64
        stages = []
        for stage, blocks in enumerate(layers):
            planes = 64 * 2**stage
            seq = []
            for i in range(blocks):
                stride = 2 if i == 0 and stage > 0 else 1
                seq.append(block(cin, planes, stride))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*seq))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes: int = 1000) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes)


def resnet50(num_classes: int = 1000) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes)


def resnet152(num_classes: int = 1000) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes)


class MnistMLP(nn.Module):
    def __init__(self, hidden: int = 500, classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return torch.softmax(self.fc3(x), dim=-1)


def mnist_mlp() -> MnistMLP:
    return MnistMLP()


MODELS = {"resnet18": resnet18, "resnet50": resnet50, "resnet152": resnet152, "mnist_mlp": mnist_mlp}


def vgg16(num_classes: int = 1000) -> nn.Sequential:
    """torchvision's vgg16 (configuration D, no batch norm), as examples/vgg16.net."""
    layers: list[nn.Module] = []
    cin = 3
    for width, convs in zip([64, 128, 256, 512, 512], [2, 2, 3, 3, 3]):
        for _ in range(convs):
            layers += [nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(inplace=True)]
            cin = width
        layers.append(nn.MaxPool2d(2))
    layers += [nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
               nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(4096, num_classes)]
    return nn.Sequential(*layers)


def trainable_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def netc_params(module: nn.Module, graph: Any) -> dict[str, np.ndarray]:
    """`module`'s parameters and batchnorm statistics as a netc weight dict for `graph`
    (a netc IR graph), through netc's own importer (`netc weights import`), which pairs
    PyTorch modules with netc layers by order and shapes and converts layouts."""
    from netc.compiler.torch_import import import_state_dict

    state = {name: tensor.detach().cpu().numpy() for name, tensor in module.state_dict().items()}
    result = import_state_dict(state, graph)
    if result.unfilled or result.unmatched_torch:
        raise ValueError(f"torch module does not fit netc's {graph.name}:\n{result.report()}")
    return result.weights
