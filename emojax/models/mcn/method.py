"""The ``mcn`` Method: MCN's objective, its k-means state outside the gradient, retrieval eval.

Loss (Chen et al., ICCV 2021; REFERENCES.md "MCN")::

    L = sum over model.pairs of MMS(x_a, x_b)                     (shared space)
      + sum over model.spaces of MMS over that space's pairs      (the seed's extra spaces)
      + w_cluster * L_clu(v, a, t; k-means of this step)
      + w_recon   * sum_m MSE(recon_m, pre-gating feature_m)

``model.pairs`` lists "a-b" pairs and may repeat one to weight it (the seed's study:
``all`` = video-text, audio-text, audio-video; ``vt_va`` = video-text + video-audio;
``va_all`` = video-audio + all pairs, so video-audio counts twice). The k-means state
(:mod:`emojax.losses.cluster`: centroids, a feature queue sharded over the data axes, counters)
lives outside the gradient: the loss runs this step's k-means on ``variables["extra"]`` and
returns the centroids and its fused rows; ``update_extra_state`` stores them after the optimizer
step, pushing every micro-batch's rows under gradient accumulation (checkpointed, resumed
bitwise). Evaluation: zero-shot text -> video retrieval over the whole split with
``score = t . (v + a)`` (R@1/5/10, median rank), plus text -> video alone.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from emojax.losses import mms_loss, reconstruction_loss
from emojax.losses.cluster import cluster_loss, fuse, kmeans_init, kmeans_push, kmeans_step
from emojax.metrics import retrieval_metrics
from emojax.models.base import Evaluator, Method
from emojax.models.mcn.model import MODALITIES, MCNModel, parse_spaces
from emojax.nn.resdavenet import ResDAVEnetConfig

PAIR_SETS = {
    "all": ("video-text", "audio-text", "audio-video"),
    "vt_va": ("video-text", "audio-video"),
    "va_all": ("audio-video", "video-text", "audio-text", "audio-video"),
}


def parse_pairs(pairs) -> list[tuple[str, str]]:
    """``"all"`` / a PAIR_SETS name / ``("video-text", ...)`` -> [(a, b), ...] (repeats kept)."""
    if isinstance(pairs, str):
        if pairs not in PAIR_SETS:
            raise ValueError(f"model.pairs={pairs!r}: a name of {sorted(PAIR_SETS)} or 'a-b' pairs")
        pairs = PAIR_SETS[pairs]
    out = []
    for pair in pairs:
        a, _, b = str(pair).partition("-")
        if a not in MODALITIES or b not in MODALITIES or a == b:
            raise ValueError(
                f"model.pairs entry {pair!r}: expected two different modalities of {MODALITIES} "
                "joined by '-', e.g. 'video-text'"
            )
        out.append((a, b))
    if not out:
        raise ValueError("model.pairs is empty: contrast at least one pair of modalities")
    return out


def pair_mms(embeddings: dict, pairs: list[tuple[str, str]], margin: float) -> jax.Array:
    """Sum of masked-margin softmax losses over ``pairs`` (a repeated pair counts again)."""
    return sum(mms_loss(embeddings, pairs=[pair], margin=margin) for pair in pairs)


class RetrievalEvaluator(Evaluator):
    """Zero-shot text -> clip retrieval over the whole split: ``t . (v + a)`` and ``t . v``."""

    name = "retrieval"

    def predict(self, model, variables, batch):
        out = model.apply(_model_variables(variables), batch, train=False)
        return {m: out[m].astype(jnp.float32) for m in MODALITIES}

    def compute(self, outputs, reference=None):
        text = outputs["text"]
        metrics = retrieval_metrics(text, outputs["video"] + outputs["audio"], prefix="t2va_")
        metrics.update(retrieval_metrics(text, outputs["video"], prefix="t2v_"))
        return metrics


def _model_variables(variables) -> dict:
    return {k: v for k, v in variables.items() if k in ("params", "batch_stats")}


class MCN(Method):
    """Method ``mcn`` (configs/mcn/*.py)."""

    rng_streams = ("dropout", "kmeans")

    def __init__(self, config):
        super().__init__(config)
        m = config.model
        self.pairs = parse_pairs(m.pairs)
        self.spaces = parse_spaces(tuple(m.spaces))
        self.clustering = float(m.w_cluster) > 0

    # -- model -----------------------------------------------------------------------------------

    def build_model(self):
        m = self.config.model
        return MCNModel(
            embed_dim=m.embed_dim,
            video_dim=m.video_dim,
            word_dim=m.word_dim,
            audio=ResDAVEnetConfig(
                feat_dim=m.n_mels, widths=tuple(m.audio_widths), depths=tuple(m.audio_depths)
            ),
            reconstruction=float(m.w_recon) > 0,
            recon_hidden=m.recon_hidden,
            spaces=tuple(m.spaces),
            dtype=jnp.dtype(self.config.train.compute_dtype),
        )

    def example_batch(self, batch_size):
        m, d = self.config.model, self.config.data
        f32 = jnp.float32
        batch = {
            "video": jax.ShapeDtypeStruct((batch_size, m.video_dim), f32),
            "audio": jax.ShapeDtypeStruct((batch_size, d.audio_frames, m.n_mels), f32),
            "text": jax.ShapeDtypeStruct((batch_size, d.max_words, m.word_dim), f32),
            "text_mask": jax.ShapeDtypeStruct((batch_size, d.max_words), f32),
        }
        if d.source != "emojax_senses":  # real clips: audio cropped / padded (data.FeatureClips)
            batch["audio_nframes"] = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
        return batch

    def init_variables(self, model, rng, batch):
        return model.init({"params": rng}, batch, train=False)

    def init_extra_state(self, rng):
        if not self.clustering:
            return {}
        c = self.config.model.cluster
        return {
            "kmeans": kmeans_init(
                c.num_clusters, self.config.model.embed_dim, c.queue_size, partitioned=True
            )
        }

    # -- objective -------------------------------------------------------------------------------

    def loss(self, model, variables, batch, rng, *, train):
        m = self.config.model
        out, collections = model.apply(
            _model_variables(variables), batch, train=train, mutable=["batch_stats"]
        )
        emb = {k: out[k] for k in MODALITIES}
        terms = {"mms": pair_mms(emb, self.pairs, m.margin)}
        for name, mods in self.spaces.items():
            space_pairs = [(a, b) for i, a in enumerate(mods) for b in mods[i + 1 :]]
            terms[f"mms_{name}"] = pair_mms(out["spaces"][name], space_pairs, m.margin)
        if float(m.w_recon) > 0:
            targets = out["recon_targets"]
            if m.detach_recon_targets:
                targets = jax.tree.map(jax.lax.stop_gradient, targets)
            terms["recon"] = reconstruction_loss(out["recon"], targets, detach_targets=False)
        new_extra = None
        if self.clustering and train:
            c = m.cluster
            fused = jax.lax.stop_gradient(fuse(emb))
            kmeans, labels = kmeans_step(
                variables["extra"]["kmeans"],
                fused,
                self.rngs(rng)["kmeans"],
                push=fused[:0],  # pushed by update_extra_state, once per micro-batch
                refit_every=c.refit_every,
                reset_every=c.reset_every,
                max_iter=c.max_iter,
            )
            terms["cluster"] = cluster_loss(
                emb,
                kmeans.centroids,
                assignments=labels,
                margin=m.margin,
                fused_only=c.fused_only,
            )
            new_extra = {"centroids": kmeans.centroids, "push": fused}
        total = sum(terms[k] for k in terms if k.startswith("mms"))
        total = total + float(m.w_recon) * terms.get("recon", 0.0)
        total = total + float(m.w_cluster) * terms.get("cluster", 0.0)
        metrics = {f"loss_{k}": v for k, v in terms.items()}
        if new_extra is None:
            return total, (metrics, collections)
        return total, (metrics, collections, new_extra)

    def update_extra_state(self, extra, outputs, *, step, rng):
        """This step's centroids and the micro-batch's fused rows pushed into the queue; with
        gradient accumulation every micro-batch's loss saw the state of the step start, their
        rows are pushed in order and the last micro-batch's centroids are kept."""
        del rng
        state = extra["kmeans"]._replace(centroids=outputs["centroids"])
        state = kmeans_push(state, outputs["push"])
        return {"kmeans": state._replace(step=(step + 1).astype(jnp.int32))}

    def evaluators(self, split):
        return [RetrievalEvaluator()]

    # -- data ------------------------------------------------------------------------------------

    def data_source(self, split):
        d = self.config.data
        if d.source == "emojax_senses":
            from emojax.data import senses

            return senses.load_source(split, d.data_dir or None, **_senses_sizes(d))
        from emojax.models.mcn import data

        if d.source in data.FEATURE_SOURCES:
            return data.feature_source(self.config, split)
        raise ValueError(
            f"config.data.source={d.source!r}: the mcn method reads 'emojax_senses' (built-in) "
            f"or one of {data.FEATURE_SOURCES}"
        )

    def preprocess(self, split):
        d = self.config.data
        if d.source != "emojax_senses":
            from emojax.models.mcn.data import feature_transforms

            return feature_transforms(self.config)
        from emojax.models.mcn.data import SensesAsClips

        return [
            SensesAsClips(
                _word_table(d.minilm_path or None), self.config.model.video_dim, d.data_seed
            )
        ]

    def prepare_data(self):
        d = self.config.data
        if d.source == "emojax_senses":
            from emojax.data import senses

            senses.get_builder(d.data_dir or None, **_senses_sizes(d))
        else:
            from emojax.models.mcn.data import prepare_feature_data

            prepare_feature_data(self.config)


def _senses_sizes(d) -> dict:
    return dict(
        seed=d.data_seed,
        num_train=d.num_train,
        num_validation=d.num_validation,
        num_test=d.num_test,
    )


@functools.cache
def _word_table(path: str | None) -> np.ndarray:
    from emojax.data import senses
    from emojax.models.mcn.data import word_vector_table

    return word_vector_table(senses.vocabulary(), path)
