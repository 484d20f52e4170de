"""The ``joyful`` Method: objective, augmented views, whole-split weighted-F1 evaluation, data.

Loss (REFERENCES.md "Joyful")::

    L = CE (masked mean over real utterances; BCE summed over emotions for multi-label MOSEI)
      + w_contrast * sum over views v of GRACE(z, z_v)       (z: RGCN outputs of the original
                                                               graph, z_v: of augmented view v)
      + w_fusion   * mean over utterances of (MSE_global + MSE_local)

Defaults from the official code (w_contrast 0.2, w_fusion 0.05, two views of feature masking
(p 0.25) + edge rewiring (10 % of the edges)); the paper's (beta 0.3, alpha 0.06, second view
with Katz high-order edges) in configs/joyful/paper.py. Unlike the official code, the views are
new arrays (the original graph that the classifier sees is never perturbed), rewiring stays in
the edge's dialogue, and the fusion loss averages over every utterance of the batch.

Model selection as in the paper: the validation evaluator reports dev weighted F1 / accuracy and,
when ``data.report_test`` is set, the test split's at the same checkpoint (``test_weighted_f1``);
the trainer keeps the best-dev checkpoint and :mod:`emojax.models.joyful.report` reads the test
score of the best-dev evaluation.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from emojax.losses import graph_contrastive_loss
from emojax.metrics.classification import accuracy, f1_score, multilabel_f1
from emojax.models.base import Evaluator, Method
from emojax.models.joyful import graph as G
from emojax.models.joyful.model import JoyfulModel

VIEWS = ("mask_rewire", "mask_katz")


def _model_variables(variables) -> dict:
    return {k: v for k, v in variables.items() if k in ("params", "batch_stats")}


def task_loss(logits, labels, mask, *, multilabel: bool, class_weights=None):
    """CE over ``logits [B, L, C]``, ``labels [B, L]`` (weighted mean over real utterances, as
    torch's weighted NLLLoss); multi-label: BCE-with-logits summed over emotions ``[B, L, C]``,
    mean over utterances. Scalar float32."""
    mask = mask.astype(jnp.float32)
    if multilabel:
        y = labels.astype(jnp.float32)
        bce = jnp.maximum(logits, 0) - logits * y + jnp.log1p(jnp.exp(-jnp.abs(logits)))
        return jnp.sum(bce.sum(-1) * mask) / jnp.maximum(mask.sum(), 1.0)
    logp = jax.nn.log_softmax(logits, -1)
    nll = -jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), -1)[..., 0]
    w = mask
    if class_weights is not None:
        w = w * jnp.asarray(class_weights, jnp.float32)[labels]
    return jnp.sum(nll * w) / jnp.maximum(w.sum(), 1e-12)


class ErcEvaluator(Evaluator):
    """Weighted F1 and accuracy over every utterance of the split (sklearn's
    ``f1_score(average="weighted")``); multi-label: the mean over emotions of each emotion's
    binary weighted F1 / accuracy, plus multi-label weighted F1. With ``test=True`` the test
    split's outputs come as ``reference`` and its metrics are reported as ``test_*``."""

    name = "erc"

    def __init__(self, num_classes: int, multilabel: bool, test: bool = False):
        self.num_classes = num_classes
        self.multilabel = multilabel
        self.reference_split = "test" if test else None

    def predict(self, model, variables, batch):
        out = model.apply(_model_variables(variables), batch, train=False)
        logits = out["logits"]
        pred = (logits > 0).astype(jnp.int32) if self.multilabel else jnp.argmax(logits, -1)
        return {
            "pred": pred.astype(jnp.int32),
            "label": batch["label"].astype(jnp.int32),
            "mask": batch["utt_mask"].astype(bool),
        }

    def scores(self, outputs) -> dict[str, float]:
        mask = outputs["mask"].astype(bool)
        y, p = outputs["label"][mask], outputs["pred"][mask]
        if not self.multilabel:
            return {
                "weighted_f1": f1_score(y, p, self.num_classes, "weighted"),
                "macro_f1": f1_score(y, p, self.num_classes, "macro"),
                "accuracy": accuracy(y, p),
                "num_utterances": float(mask.sum()),
            }
        per_emotion = [
            (f1_score(y[:, c], p[:, c], 2, "weighted"), accuracy(y[:, c], p[:, c]))
            for c in range(self.num_classes)
        ]
        return {
            "weighted_f1": float(np.mean([f for f, _ in per_emotion])),
            "accuracy": float(np.mean([a for _, a in per_emotion])),
            "multilabel_weighted_f1": multilabel_f1(y, p, "weighted"),
            "num_utterances": float(mask.sum()),
        }

    def compute(self, outputs, reference=None):
        metrics = self.scores(outputs)
        if reference is not None:
            metrics.update({f"test_{k}": v for k, v in self.scores(reference).items()})
        return metrics


def _cfg(section, key, default):
    return section[key] if key in section else default


class Joyful(Method):
    """Method ``joyful`` (configs/joyful/*.py)."""

    rng_streams = ("dropout", "augment")

    def __init__(self, config):
        super().__init__(config)
        m, d = config.model, config.data
        self.modalities = tuple(m.modalities)
        if not self.modalities:
            raise ValueError("model.modalities is empty: give at least one of audio/text/visual")
        missing = [mod for mod in self.modalities if mod not in d.dims]
        if missing:
            raise ValueError(
                f"model.modalities {missing} have no width in data.dims {dict(d.dims)}"
            )
        for view in m.contrast.views:
            if view not in VIEWS:
                raise ValueError(f"model.contrast.views entry {view!r}: one of {VIEWS}")
        self.graph = bool(m.graph.enabled)
        if float(m.contrast.weight) > 0 and not self.graph:
            raise ValueError("model.contrast.weight > 0 needs model.graph.enabled=True")
        self.collate = functools.partial(
            G.collate,
            max_len=d.max_len,
            n_speakers=m.graph.n_speakers,
            past=m.graph.window_past,
            future=m.graph.window_future,
            modalities=self.modalities,
            num_classes=m.num_classes,
            multilabel=bool(m.multilabel),
        )

    # -- model -----------------------------------------------------------------------------------

    def build_model(self):
        m = self.config.model
        f, c = m.fusion, m.context
        return JoyfulModel(
            modalities=self.modalities,
            num_classes=m.num_classes,
            fusion=f.kind,
            local_dim=f.local_dim,
            ae_hidden=f.hidden,
            ae_code=f.code_dim,
            fusion_chunk=_cfg(f, "chunk", 0),
            detach_recon_targets=bool(_cfg(f, "detach_targets", False)),
            eta=_cfg(f, "eta", 0.2),
            global_heads=_cfg(f, "global_heads", 1),
            context_layers=c.layers,
            context_heads=c.heads,
            context_mlp=c.mlp_dim,
            context_out=c.out_dim,
            graph=self.graph,
            n_speakers=m.graph.n_speakers,
            graph_heads=m.graph.heads,
            classifier_hidden=m.classifier_hidden,
            dropout_rate=m.dropout,
            dtype=jnp.dtype(self.config.train.compute_dtype),
        )

    def example_batch(self, batch_size):
        d, m = self.config.data, self.config.model
        b, length = batch_size, d.max_len
        edges = len(G.window_edges(length, m.graph.window_past, m.graph.window_future)[0])
        spec = {
            mod: jax.ShapeDtypeStruct((b, length, d.dims[mod]), jnp.float32)
            for mod in self.modalities
        }
        label_shape = (b, length, m.num_classes) if m.multilabel else (b, length)
        spec.update(
            speaker=jax.ShapeDtypeStruct((b, length), jnp.int32),
            label=jax.ShapeDtypeStruct(label_shape, jnp.float32 if m.multilabel else jnp.int32),
            utt_mask=jax.ShapeDtypeStruct((b, length), jnp.bool_),
            edge_src=jax.ShapeDtypeStruct((b, edges), jnp.int32),
            edge_dst=jax.ShapeDtypeStruct((b, edges), jnp.int32),
            edge_type=jax.ShapeDtypeStruct((b, edges), jnp.int32),
            edge_mask=jax.ShapeDtypeStruct((b, edges), jnp.bool_),
        )
        return spec

    def init_variables(self, model, rng, batch):
        return model.init({"params": rng, "dropout": rng}, batch, train=False)

    # -- views and objective ----------------------------------------------------------------------

    def make_views(self, batch, rng) -> list:
        """The augmented views of the batch's graphs (new arrays; ``batch`` is not changed)."""
        cfg, m = self.config.model.contrast, self.config.model
        b, length = batch["utt_mask"].shape
        mask = batch["utt_mask"].astype(bool)
        views = []
        for index, kind in enumerate(cfg.views):
            k_feat, k_edge = jax.random.split(jax.random.fold_in(rng, index))
            keep = jax.random.bernoulli(
                k_feat, 1.0 - cfg.feature_mask, (b, length, m.context.out_dim)
            )
            src, dst, etype, emask = (
                batch["edge_src"],
                batch["edge_dst"],
                batch["edge_type"],
                batch["edge_mask"],
            )
            if kind == "mask_rewire":
                dst = G.rewire_edges(k_edge, dst, emask, mask, cfg.rewire)
                views.append((keep, (src, dst, etype, emask)))
            else:  # mask_katz: the original edges plus the high-order ones
                k_src, k_dst, k_type, k_mask = G.katz_edges(
                    src,
                    dst,
                    emask,
                    mask,
                    beta=cfg.katz_beta,
                    order=cfg.katz_order,
                    threshold=cfg.katz_threshold,
                    n_speakers=m.graph.n_speakers,
                    speaker=batch["speaker"],
                )
                cat = lambda a, c: jnp.concatenate([a, c], axis=1)  # noqa: E731
                views.append(
                    (
                        keep,
                        (cat(src, k_src), cat(dst, k_dst), cat(etype, k_type), cat(emask, k_mask)),
                    )
                )
        return views

    def loss(self, model, variables, batch, rng, *, train):
        m = self.config.model
        rngs = self.rngs(rng)
        contrast = train and self.graph and float(m.contrast.weight) > 0 and len(m.contrast.views)
        views = self.make_views(batch, rngs["augment"]) if contrast else ()
        out, collections = model.apply(
            _model_variables(variables),
            batch,
            train=train,
            views=views,
            rngs={"dropout": rngs["dropout"]},
            mutable=["batch_stats"],
        )
        mask = batch["utt_mask"].astype(bool)
        weights = tuple(m.class_weights) if len(m.class_weights) else None
        terms = {
            "task": task_loss(
                out["logits"],
                batch["label"],
                mask,
                multilabel=bool(m.multilabel),
                class_weights=weights,
            )
        }
        n = jnp.maximum(mask.sum(), 1)
        terms["fusion"] = jnp.sum(jnp.where(mask, out["fusion_loss"], 0.0)) / n
        total = terms["task"] + float(m.w_fusion) * terms["fusion"]
        if contrast:
            node_mask = mask.reshape(-1)
            terms["contrast"] = sum(
                graph_contrastive_loss(
                    out["rgcn"],
                    z_view,
                    temperature=m.contrast.temperature,
                    intra_view=bool(m.contrast.intra_view),
                    node_mask=node_mask,
                )
                for z_view in out["views"]
            )
            total = total + float(m.contrast.weight) * terms["contrast"]
        metrics = {f"loss_{k}": v for k, v in terms.items()}
        if not m.multilabel:
            hit = (jnp.argmax(out["logits"], -1) == batch["label"]) & mask
            metrics["accuracy"] = hit.sum() / n
        return total, (metrics, collections)

    def evaluators(self, split):
        m, d = self.config.model, self.config.data
        test = bool(_cfg(d, "report_test", False)) and split == self.config.eval.split != "test"
        return [ErcEvaluator(m.num_classes, bool(m.multilabel), test=test)]

    # -- data ------------------------------------------------------------------------------------

    def data_source(self, split):
        d = self.config.data
        if d.source == "emojax_dialogues":
            from emojax.data import dialogues

            return dialogues.load_source(split, d.data_dir or None, **_builtin_sizes(d, split))
        if d.source == "iemocap":
            from emojax.data import iemocap

            return iemocap.load_source(
                split,
                manual_dir=d.manual_dir or None,
                data_dir=d.data_dir or None,
                config=d.config_name,
            )
        if d.source == "meld":
            from emojax.data import meld

            files = {m: d.get(f"{m}_file", "") for m in ("audio", "visual")}
            return meld.load_source(
                split,
                manual_dir=d.manual_dir or None,
                data_dir=d.data_dir or None,
                audio_file=files["audio"],
                visual_file=files["visual"],
                audio_dim=d.dims.get("audio", 0) if files["audio"] else 0,
                visual_dim=d.dims.get("visual", 0) if files["visual"] else 0,
                minilm_path=d.get("minilm_path", ""),
            )
        if d.source == "mosei":
            from emojax.data import mosei

            return mosei.load_source(
                split, manual_dir=d.manual_dir or None, data_dir=d.data_dir or None
            )
        raise ValueError(
            f"config.data.source={d.source!r}: one of emojax_dialogues, iemocap, meld, mosei"
        )

    def prepare_data(self):
        if self.config.data.source == "emojax_dialogues":
            for split in ("train", "validation", "test"):
                self.data_source(split)


def _builtin_sizes(d, split: str) -> dict:
    count = {"train": d.num_train, "validation": d.num_validation, "test": d.num_test}[split]
    return dict(
        num_dialogues=count,
        num_train=d.num_train,
        seed=d.data_seed,
        min_len=d.min_dialogue_len,
        max_len=d.max_dialogue_len,
        max_speakers=d.max_speakers,
        minilm_path=d.minilm_path or None,
    )
