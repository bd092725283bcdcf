"""Readable hand-built weights: named residual slots, blocks that read and write them.

A construction is written as a :class:`Program`, step by step, the way its
proof reads::

    prog = Program()
    one, x = prog.constant("one"), prog.token_input("x")
    l1 = prog.layer()
    l1.attend(max_retrieval(query=beta * one, key=x, into="m"))   # slot m ← max_s x_s
    l1.ffn(FFNBlock([prog["m"] - x], decoder_net, ["p"]))         # slot p ← ψ̂(m − x)
    ...
    prog.readout(prog["y"])
    compiled = prog.compile()

and only then compiled into the weight pytree of a :class:`~infoflow_jax.core.model.Transformer`.
Every slot is one basis direction of the residual stream and is written exactly
once (by the embedding, an attention head or an FFN block), after which it only
is read. Residual addition into a fresh (zero) slot is therefore assignment,
which is what makes "slot m ← …" literally true. Writing a slot twice, reading
one before it is written, and shape mismatches are :class:`BuildError` at
build time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import jax
import jax.numpy as jnp
import numpy as np
from infoflow_jax.core.flax_nnx import nnx

from infoflow_jax.core.model import FFNLayerShape, LayerShape, TFConfig, Transformer
from infoflow_jax.core.relu_net import Dense, Grouped, Layer, depth, pad_depth


class BuildError(ValueError):
    """A construction is inconsistent (slot conflict, unknown slot, shape error)."""


# ----------------------------------------------------------------------------- forms
@dataclass(frozen=True)
class Form:
    """A linear form Σ_i c_i·slot_i on the residual stream."""

    coeffs: tuple[tuple[str, float], ...]

    @staticmethod
    def of(**coeffs: float) -> "Form":
        return Form(tuple(sorted(coeffs.items())))

    def as_dict(self) -> dict[str, float]:
        return dict(self.coeffs)

    def _combine(self, other: "Form", sign: float) -> "Form":
        out = self.as_dict()
        for k, v in other.coeffs:
            out[k] = out.get(k, 0.0) + sign * v
        return Form(tuple(sorted((k, v) for k, v in out.items() if v != 0.0)))

    def __add__(self, other: "Form") -> "Form":
        return self._combine(other, 1.0)

    def __sub__(self, other: "Form") -> "Form":
        return self._combine(other, -1.0)

    def __neg__(self) -> "Form":
        return Form(tuple((k, -v) for k, v in self.coeffs))

    def __mul__(self, c: float) -> "Form":
        return Form(tuple((k, float(c) * v) for k, v in self.coeffs if c != 0))

    __rmul__ = __mul__

    def slots(self) -> list[str]:
        return [k for k, _ in self.coeffs]

    def __str__(self) -> str:
        if not self.coeffs:
            return "0"
        parts = []
        for k, v in self.coeffs:
            parts.append(k if v == 1 else f"-{k}" if v == -1 else f"{v:g}·{k}")
        return " + ".join(parts).replace("+ -", "- ")


# ----------------------------------------------------------------------------- blocks
@dataclass(frozen=True)
class Head:
    """One attention head.

    score(i, s) = Σ_j ⟨query_j, h_i⟩·⟨key_j, h_s⟩ over the pairs in ``score``;
    for each (value form, slot) in ``values``: slot ← Σ_s softmax_s(score)·⟨value, h_s⟩.
    """

    score: tuple[tuple[Form, Form], ...]
    values: tuple[tuple[Form, str], ...]
    note: str = ""
    claim: object = None  # the step's local claim (infoflow_jax.core.claims), checked against the weights


def max_retrieval(*, query: Form, key: Form, into: str, value: Form | None = None, note: str = "",
                  claim: object = None) -> Head:
    """slot ``into`` ← softmax-average of ``value`` (default: ``key``) under score ⟨query⟩·⟨key⟩.

    With ``query = β·one`` this is the soft maximum of L1: it lies within
    e_max(T, β) of max_s key_s when value = key.
    """
    value = key if value is None else value
    return Head(score=((query, key),), values=((value, into),),
                note=note or f"{into} ← max over tokens of ({key})", claim=claim)


@dataclass(frozen=True)
class FFNBlock:
    """outputs ← net(inputs): a position-wise ReLU network reading forms, writing slots."""

    inputs: tuple[Form, ...]
    net: tuple[Layer, ...]
    outputs: tuple[str, ...]
    note: str = ""
    claim: object = None  # the step's local claim (infoflow_jax.core.claims), checked against the weights

    def __post_init__(self):
        if not self.net:
            raise BuildError("FFN block has an empty network")
        if self.net[0].n_in != len(self.inputs):
            raise BuildError(f"FFN block '{self.note}': network takes {self.net[0].n_in} inputs, "
                             f"{len(self.inputs)} forms given")
        if self.net[-1].n_out != len(self.outputs):
            raise BuildError(f"FFN block '{self.note}': network gives {self.net[-1].n_out} outputs, "
                             f"{len(self.outputs)} slots given")
        if not isinstance(self.net[0], Dense) or not isinstance(self.net[-1], Dense):
            raise BuildError(f"FFN block '{self.note}': first and last layers must be Dense")
        for a, b in zip(self.net[:-1], self.net[1:]):
            if a.n_out != b.n_in:
                raise BuildError(f"FFN block '{self.note}': layer widths {a.n_out} → {b.n_in} do not chain")


# ----------------------------------------------------------------------------- program
@dataclass
class LayerBuilder:
    program: "Program"
    index: int
    heads: list[Head] = field(default_factory=list)
    blocks: list[FFNBlock] = field(default_factory=list)

    def attend(self, head: Head) -> "LayerBuilder":
        for q, k in head.score:
            self.program._check_readable(q, f"layer {self.index} attention query")
            self.program._check_readable(k, f"layer {self.index} attention key")
        for v, out in head.values:
            self.program._check_readable(v, f"layer {self.index} attention value")
        for v, out in head.values:
            self.program._write(out, f"layer {self.index} attention ({head.note})", stage=2 * self.index - 1)
        self.heads.append(head)
        self.program.trace.append(f"layer {self.index} attn: {head.note}")
        return self

    def ffn(self, block: FFNBlock) -> "LayerBuilder":
        for f in block.inputs:
            self.program._check_readable(f, f"layer {self.index} FFN input")
        for out in block.outputs:
            self.program._write(out, f"layer {self.index} FFN ({block.note})", stage=2 * self.index)
        self.blocks.append(block)
        self.program.trace.append(f"layer {self.index} ffn : {block.note}")
        return self


class Program:
    """A hand-built TF(L, h, E, W): slots, embedding, layers, readout."""

    def __init__(self, *, d: int = 1, positional: str = "none", max_T: int = 0):
        self.d = d
        self.positional = positional
        self.max_T = max_T
        self.slots: list[str] = []
        self.writer: dict[str, str] = {}
        self.stage: dict[str, int] = {}  # slot → when it is written: 0 embedding, 2l−1 layer l's attention, 2l its FFN
        self.token_inputs: dict[str, int] = {}  # slot ← x_{s, i}
        self.token_constants: dict[str, float] = {}
        self.cls_constants: dict[str, float] = {}
        self.position_slots: list[str] = []
        self.position_inputs: dict[str, tuple[int, int]] = {}  # slot ← x_{s, i} at token s only
        self.layers: list[LayerBuilder] = []
        self.readout_form: Form | None = None
        self.readout_bias = 0.0
        self.trace: list[str] = []

    # -- slots
    def __getitem__(self, name: str) -> Form:
        if name not in self.writer:
            raise BuildError(f"slot '{name}' is read before it is written")
        return Form.of(**{name: 1.0})

    def _write(self, name: str, by: str, stage: int = 0) -> Form:
        if name in self.writer:
            raise BuildError(f"slot '{name}' is written by {self.writer[name]} and again by {by}")
        self.writer[name] = by
        self.stage[name] = stage
        self.slots.append(name)
        return Form.of(**{name: 1.0})

    def _check_readable(self, form: Form, where: str) -> None:
        for s in form.slots():
            if s not in self.writer:
                raise BuildError(f"{where} reads slot '{s}', which is not written before it")

    # -- embedding
    def token_input(self, name: str = "x", coordinate: int = 0) -> Form:
        """slot ``name`` ← x_{s, coordinate} at every token s (0 at CLS)."""
        if not 0 <= coordinate < self.d:
            raise BuildError(f"coordinate {coordinate} out of range for d = {self.d}")
        self.token_inputs[name] = coordinate
        self.trace.append(f"embed: {name} ← x[{coordinate}] at tokens")
        return self._write(name, "embedding (token input)")

    def constant(self, name: str, *, tokens: float = 1.0, cls: float = 1.0) -> Form:
        """slot ``name`` ← a constant (``tokens`` at tokens, ``cls`` at CLS)."""
        if tokens:
            self.token_constants[name] = tokens
        if cls:
            self.cls_constants[name] = cls
        self.trace.append(f"embed: {name} ← {tokens:g} at tokens, {cls:g} at CLS")
        return self._write(name, "embedding (constant)")

    def position_codes(self, prefix: str = "pos") -> list[Form]:
        """slots pos_1..pos_T ← one-hot position of the token (0 at CLS)."""
        if self.positional != "onehot":
            raise BuildError("position_codes needs Program(positional='onehot', max_T=T)")
        forms = [self._write(f"{prefix}{s}", "embedding (one-hot position)") for s in range(1, self.max_T + 1)]
        self.position_slots = [f"{prefix}{s}" for s in range(1, self.max_T + 1)]
        self.trace.append(f"embed: {prefix}1..{prefix}{self.max_T} ← one-hot position")
        return forms

    def position_inputs_of(self, prefix: str = "xs", coordinate: int = 0) -> list[Form]:
        """slots xs1..xsT ← x_{s, coordinate} at token s, 0 at every other position:
        the one-hot product feature x_s ⊗ e_s, embedded through a per-position matrix A_s
        (``TFConfig.position_input``). Needs ``max_T``."""
        if self.max_T < 1:
            raise BuildError("position_inputs_of needs Program(max_T=T)")
        if not 0 <= coordinate < self.d:
            raise BuildError(f"coordinate {coordinate} out of range for d = {self.d}")
        forms = []
        for s in range(1, self.max_T + 1):
            name = f"{prefix}{s}"
            forms.append(self._write(name, "embedding (position-dependent input)"))
            self.position_inputs[name] = (s - 1, coordinate)
        self.trace.append(f"embed: {prefix}s ← x_s[{coordinate}] at token s only (x ⊗ e_s), s = 1..{self.max_T}")
        return forms

    def layer(self) -> LayerBuilder:
        lb = LayerBuilder(self, len(self.layers) + 1)
        self.layers.append(lb)
        return lb

    def readout(self, form: Form, bias: float = 0.0) -> None:
        self._check_readable(form, "readout")
        self.readout_form = form
        self.readout_bias = float(bias)
        self.trace.append(f"readout: y ← {form} at CLS" + (f" + {bias:g}" if bias else ""))

    # -- compilation
    def _vec(self, form: Form) -> np.ndarray:
        v = np.zeros(len(self.slots))
        for k, c in form.coeffs:
            v[self.slots.index(k)] += c
        return v

    def _index(self, name: str) -> int:
        return self.slots.index(name)

    def _layer_ffn(self, lb: LayerBuilder, E: int) -> list[Layer]:
        if not lb.blocks:
            return [Dense(np.zeros((E, 1)), np.zeros(1)), Dense(np.zeros((1, E)), np.zeros(E))]
        hidden = max(depth(b.net) for b in lb.blocks)
        nets = [pad_depth(b.net, hidden) for b in lb.blocks]
        layers: list[Layer] = []
        for j in range(hidden + 1):
            parts = [net[j] for net in nets]
            if j == 0:  # reads the residual stream through the input forms
                W = np.concatenate([np.stack([self._vec(f) for f in b.inputs], 1) @ p.W
                                    for b, p in zip(lb.blocks, parts)], axis=1)
                layers.append(Dense(W, np.concatenate([p.b for p in parts])))
            elif j == hidden:  # writes the output slots
                W = np.zeros((sum(p.n_in for p in parts), E))
                row = 0
                for b, p in zip(lb.blocks, parts):
                    for o, name in enumerate(b.outputs):
                        W[row:row + p.n_in, self._index(name)] += p.W[:, o]
                    row += p.n_in
                bias = np.zeros(E)
                for b, p in zip(lb.blocks, parts):
                    for o, name in enumerate(b.outputs):
                        bias[self._index(name)] += p.b[o]
                layers.append(Dense(W, bias))
            elif all(isinstance(p, Dense) for p in parts):
                W = np.zeros((sum(p.n_in for p in parts), sum(p.n_out for p in parts)))
                r = c = 0
                for p in parts:
                    W[r:r + p.n_in, c:c + p.n_out] = p.W
                    r, c = r + p.n_in, c + p.n_out
                layers.append(Dense(W, np.concatenate([p.b for p in parts])))
            elif len(parts) == 1:
                layers.append(parts[0])
            else:
                raise BuildError(f"layer {lb.index}: a grouped FFN layer cannot share an FFN with other blocks")
        return layers

    def compile(self, dtype=jnp.float64) -> "CompiledProgram":
        if self.readout_form is None:
            raise BuildError("program has no readout")
        E = len(self.slots)
        layer_shapes, attn_w, ffn_w = [], [], []
        for lb in self.layers:
            heads = lb.heads or [Head(score=(), values=())]
            dk = max(1, max(len(h.score) for h in heads))
            dv = max(1, max(len(h.values) for h in heads))
            Wq = np.zeros((len(heads), E, dk)); Wk = np.zeros_like(Wq)
            Wv = np.zeros((len(heads), E, dv)); Wo = np.zeros((len(heads), dv, E))
            for i, h in enumerate(heads):
                for j, (q, k) in enumerate(h.score):
                    Wq[i, :, j], Wk[i, :, j] = self._vec(q), self._vec(k)
                for j, (v, out) in enumerate(h.values):
                    Wv[i, :, j] = self._vec(v)
                    Wo[i, j, self._index(out)] = 1.0
            ffn = self._layer_ffn(lb, E)
            shapes = tuple(FFNLayerShape("grouped", l.n_in, l.n_out, l.W.shape[0]) if isinstance(l, Grouped)
                           else FFNLayerShape("dense", l.n_in, l.n_out) for l in ffn)
            layer_shapes.append(LayerShape(len(heads), dk, dv, shapes))
            attn_w.append((Wq, Wk, Wv, Wo))
            ffn_w.append(ffn)
        cfg = TFConfig(d=self.d, E=E, layers=tuple(layer_shapes), positional=self.positional, max_T=self.max_T,
                       position_input=bool(self.position_inputs))
        model = Transformer(cfg, dtype=dtype, rngs=None)
        A = np.zeros((self.d, E)); a = np.zeros(E); c = np.zeros(E); P = np.zeros((cfg.n_pos, E))
        for name, i in self.token_inputs.items():
            A[i, self._index(name)] = 1.0
        for name, v in self.token_constants.items():
            a[self._index(name)] = v
        for name, v in self.cls_constants.items():
            c[self._index(name)] = v
        for s, name in enumerate(self.position_slots):
            P[s, self._index(name)] = 1.0
        # device_put from NumPy: jnp.asarray would compile a small program per shape (every ε has new widths)
        arr = lambda v: jax.device_put(np.asarray(v, dtype))
        put = lambda p, v: p.set_value(arr(v)) if hasattr(p, "set_value") else setattr(p, "value", arr(v))
        put(model.embed.A, A); put(model.embed.a, a); put(model.embed.c, c); put(model.embed.P, P)
        if self.position_inputs:
            As = np.zeros((self.max_T, self.d, E))
            for name, (s, i) in self.position_inputs.items():
                As[s, i, self._index(name)] = 1.0
            put(model.embed.As, As)
        for blk, (Wq, Wk, Wv, Wo), ffn in zip(model.blocks, attn_w, ffn_w):
            put(blk.attn.Wq, Wq); put(blk.attn.Wk, Wk); put(blk.attn.Wv, Wv); put(blk.attn.Wo, Wo)
            for i, l in enumerate(ffn):
                put(blk.ffn.W[i], l.W); put(blk.ffn.b[i], l.b)
        put(model.w, self._vec(self.readout_form)); put(model.b, self.readout_bias)
        return CompiledProgram(model=model, slots=tuple(self.slots), trace=tuple(self.trace), sites=self._sites(),
                               layout=SlotLayout(stage=dict(self.stage), token_constants=dict(self.token_constants),
                                                 cls_constants=dict(self.cls_constants),
                                                 position_slots=tuple(self.position_slots),
                                                 readout=self.readout_form, readout_bias=self.readout_bias,
                                                 token_inputs=dict(self.token_inputs),
                                                 position_inputs=dict(self.position_inputs)))

    def _sites(self) -> tuple["Site", ...]:
        """Every head and FFN block, where it sits in the compiled weights, with its claim."""
        sites = []
        for lb in self.layers:
            sites += [Site(lb.index - 1, "attn", i, h.note, h.claim, outputs=tuple(o for _, o in h.values))
                      for i, h in enumerate(lb.heads)]
            sites += [Site(lb.index - 1, "ffn", i, b.note, b.claim, inputs=b.inputs, outputs=b.outputs)
                      for i, b in enumerate(lb.blocks)]
        return tuple(sites)


@dataclass(frozen=True)
class Site:
    """One step of a program: head ``index`` of layer ``layer``'s attention (0-based layer),
    or FFN block ``index`` of its FFN; what it reads and writes, and its claim (or None)."""

    layer: int
    kind: str  # "attn" | "ffn"
    index: int
    note: str
    claim: object
    inputs: tuple[Form, ...] = ()
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class SlotLayout:
    """When each slot is written (0 embedding, 2l−1 attention of layer l, 2l its FFN) and the
    constants of the embedding: what a step checker needs to read weights in slot terms."""

    stage: dict
    token_constants: dict
    cls_constants: dict
    position_slots: tuple = ()  # one-hot position slots pos1..posT (1 at token s, 0 elsewhere)
    readout: Form | None = None  # y = ⟨readout, h_CLS⟩ + readout_bias, as the program wrote it
    readout_bias: float = 0.0
    token_inputs: dict = field(default_factory=dict)  # slot ← x_{s, coordinate} at every token s (0 at CLS)
    position_inputs: dict = field(default_factory=dict)  # slot ← x_{s, coordinate} at token s only: (s, coordinate)


@dataclass
class CompiledProgram:
    """A compiled construction: the module, its slot layout, its proof trace and its steps."""

    model: Transformer
    slots: tuple[str, ...]
    trace: tuple[str, ...]
    sites: tuple[Site, ...] = ()
    layout: SlotLayout | None = None

    def split(self):
        return nnx.split(self.model)

    def read_slot(self, X, name: str, after_layer: int):
        """Value of slot ``name`` at every position (CLS first) after ``after_layer`` layers."""
        return self.model.residual_stream(X)[after_layer][:, self.slots.index(name)]

    def describe(self) -> str:
        return "\n".join(self.trace)
