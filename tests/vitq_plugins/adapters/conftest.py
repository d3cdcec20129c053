"""Small random-init models of the families the model adapters support (no weights are downloaded), as
fixtures: ``family`` is parametrized over :data:`FAMILIES`."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class FeedForward(nn.Module):
    """lucidrains vit-pytorch ``FeedForward``: pre-norm inside, a Sequential."""

    def __init__(self, dim: int, hidden: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, hidden),
            act(),
            nn.Dropout(0.0),
            nn.Linear(hidden, dim),
            nn.Dropout(0.0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


class UserAttention(nn.Module):
    """lucidrains vit-pytorch ``Attention``: pre-norm inside, bias-free fused ``to_qkv`` (or separate
    ``to_q``/``to_k``/``to_v`` with ``separate=True``), an ``nn.Softmax`` module, ``to_out``."""

    def __init__(self, dim: int, heads: int = 2, dim_head: int = 16, separate: bool = False) -> None:
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.scale = dim_head**-0.5
        self.norm = nn.LayerNorm(dim)
        self.attend = nn.Softmax(dim=-1)
        self.dropout = nn.Dropout(0.0)
        self.separate = separate
        if separate:
            self.to_q = nn.Linear(dim, inner, bias=False)
            self.to_k = nn.Linear(dim, inner, bias=False)
            self.to_v = nn.Linear(dim, inner, bias=True)
        else:
            self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        b, n, _ = x.shape
        if self.separate:
            qkv = (self.to_q(x), self.to_k(x), self.to_v(x))
        else:
            qkv = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2) for t in qkv)
        dots = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        attn = self.dropout(self.attend(dots))
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, -1)
        y: torch.Tensor = self.to_out(out)
        return y


class Transformer(nn.Module):
    """lucidrains vit-pytorch ``Transformer``: ``layers = [[attn, ff], ...]`` and a final norm."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, **kw: object) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        sep = bool(kw.get("separate", False))
        act = kw.get("act", nn.GELU)
        self.layers = nn.ModuleList(
            nn.ModuleList([UserAttention(dim, heads, dim_head, sep), FeedForward(dim, mlp_dim, act)])  # type: ignore[arg-type]
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:  # type: ignore[misc]
            x = attn(x) + x
            x = ff(x) + x
        out: torch.Tensor = self.norm(x)
        return out


class UserViT(nn.Module):
    """A small lucidrains-style ViT: conv patches, class token, learned positions, Transformer, mean-free cls head."""

    def __init__(
        self,
        image_size: int = 32,
        patch: int = 4,
        dim: int = 64,
        depth: int = 2,
        heads: int = 2,
        mlp_dim: int = 128,
        num_classes: int = 10,
        **kw: object,
    ) -> None:
        super().__init__()
        self.to_patch_embedding = nn.Conv2d(3, dim, patch, patch)
        n = (image_size // patch) ** 2
        self.pos_embedding = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.transformer = Transformer(dim, depth, heads, dim // heads, mlp_dim, **kw)
        self.mlp_head = nn.Linear(dim, num_classes)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.to_patch_embedding(img).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1) + self.pos_embedding
        x = self.transformer(x)
        out: torch.Tensor = self.mlp_head(x[:, 0])
        return out


class OddAttention(nn.Module):
    """Attention with names no adapter knows (``wq``/``wk``/``wv``/``wo``, ``F.softmax``, ``n``): found from its graph."""

    def __init__(self, dim: int, n: int) -> None:
        super().__init__()
        self.n = n
        self.factor = (dim // n) ** -0.5
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q = self.wq(x).view(b, t, self.n, -1).transpose(1, 2)
        k = self.wk(x).view(b, t, self.n, -1).transpose(1, 2)
        v = self.wv(x).view(b, t, self.n, -1).transpose(1, 2)
        a = torch.nn.functional.softmax(q @ k.transpose(-2, -1) * self.factor, dim=-1)
        out: torch.Tensor = self.wo((a @ v).transpose(1, 2).reshape(b, t, c))
        return out


class FusedOddAttention(nn.Module):
    """One fused ``w_in`` Linear split by indexing after a (b, t, 3, h, d) reshape; ``/ sqrt(d)`` on the logits."""

    def __init__(self, dim: int, n: int) -> None:
        super().__init__()
        self.n = n
        self.root = float((dim // n) ** 0.5)
        self.w_in = nn.Linear(dim, 3 * dim)
        self.w_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        qkv = self.w_in(x).reshape(b, t, 3, self.n, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = (torch.matmul(q, k.transpose(-2, -1)) / self.root).softmax(-1)
        out: torch.Tensor = self.w_out(torch.matmul(a, v).transpose(1, 2).reshape(b, t, c))
        return out


class OddMlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(self.act(self.fc1(x)))
        return out


class OddBlock(nn.Module):
    """A pre-norm block with timm's attribute names around an attention of unknown names."""

    def __init__(self, dim: int, n: int, fused: bool) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = FusedOddAttention(dim, n) if fused else OddAttention(dim, n)
        self.mlp = OddMlp(dim, 2 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        out: torch.Tensor = x + self.mlp(self.norm2(x))
        return out


class OddViT(nn.Module):
    def __init__(self, fused: bool = False, dim: int = 64) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 65, dim) * 0.02)
        self.blocks = nn.Sequential(*(OddBlock(dim, 2, fused) for _ in range(2)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.stem(img).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        out: torch.Tensor = self.head(self.norm(self.blocks(x))[:, 0])
        return out


class EncoderViT(nn.Module):
    """A hand-written ViT on torch's ``nn.TransformerEncoder`` (pre-norm, batch-first, GELU module or F.relu)."""

    def __init__(self, dim: int = 64, activation: object = "gelu") -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 65, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim,
            2,
            2 * dim,
            dropout=0.0,
            activation=activation,
            batch_first=True,
            norm_first=True,  # type: ignore[arg-type]
        )
        self.encoder = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.head = nn.Linear(dim, 10)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.stem(img).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        out: torch.Tensor = self.head(self.encoder(x)[:, 0])
        return out


def torchvision_vit() -> nn.Module:
    """torchvision ``VisionTransformer`` (``nn.MultiheadAttention``), 32 px, 2 layers, random init."""
    from torchvision.models import VisionTransformer

    model = VisionTransformer(
        image_size=32, patch_size=4, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128, num_classes=10
    )
    # torchvision initialises the head and the class token to zero: a zero head gives zero logits, and a zero
    # class token, 50x smaller than the patch tokens, is flushed by any per-tensor 8-bit grid of the stream
    nn.init.normal_(model.heads.head.weight, std=0.05)
    nn.init.normal_(model.class_token, std=1.0)
    return model


def user_vit(**kw: object) -> nn.Module:
    """The lucidrains-style user ViT (bias-free fused ``to_qkv``; ``separate=True``: to_q/to_k/to_v)."""
    return UserViT(**kw)  # type: ignore[arg-type]


#: family name -> factory of a small random-init model (eval mode)
FAMILIES = {
    "torchvision_vit": torchvision_vit,
    "user_vit_fused_qkv": user_vit,
    "user_vit_separate_qkv": lambda: user_vit(separate=True),
    "user_vit_relu": lambda: user_vit(act=nn.ReLU),  # a recipe's GELU site does not apply, the rest does
    "traced_separate_qkv": lambda: OddViT(fused=False),  # attention found from its graph, not its names
    "traced_fused_qkv": lambda: OddViT(fused=True),
    "torch_encoder_gelu": lambda: EncoderViT(activation=nn.GELU()),
    "torch_encoder_relu": lambda: EncoderViT(activation="relu"),
}


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)


@pytest.fixture(params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> tuple[str, nn.Module]:
    """``(name, model)``: each family's small random-init model, in eval mode, seeded."""
    torch.manual_seed(0)
    return request.param, FAMILIES[request.param]().eval()


@pytest.fixture(scope="session")
def calib() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(16, 3, 32, 32, generator=g) for _ in range(2)]


@pytest.fixture(scope="session")
def families() -> dict[str, object]:
    """:data:`FAMILIES` (name -> factory), for tests that pick one family."""
    return dict(FAMILIES)
