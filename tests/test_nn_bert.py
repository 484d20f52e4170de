"""BERT text encoder parity: real MiniLM-L6 weights vs transformers.BertModel and
sentence-transformers; MLM head vs BertForMaskedLM (random-init small config)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from emojax.convert import convert_bert, load_minilm, minilm_path
from emojax.nn.bert import BertConfig, BertEncoder

SENTENCES = ["I am so happy to see you again!", "The rain makes me sad.", "ok"]


@pytest.fixture(scope="module")
def minilm():
    module, variables, tokenizer = load_minilm()
    batch = tokenizer(SENTENCES, padding=True, return_tensors="np")
    return module, variables, tokenizer, batch


@pytest.fixture(scope="module")
def torch_minilm():
    return transformers.BertModel.from_pretrained(
        minilm_path(), attn_implementation="eager", add_pooling_layer=False
    ).eval()


def test_minilm_hidden_states_match_bert_model(minilm, torch_minilm):
    module, variables, _, batch = minilm
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert mask.min() == 0, "the batch should contain padding"
    ours = np.asarray(jax.jit(module.apply)(variables, ids, mask))
    with torch.no_grad():
        ref = torch_minilm(torch.tensor(ids), attention_mask=torch.tensor(mask))
    ref = ref.last_hidden_state.numpy()
    real = mask.astype(bool)  # padded positions are undefined in both implementations
    # 6 layers with K up to 1536: XLA and torch round differently per CPU (AVX2 vs AVX-512
    # kernels); a conversion bug moves hidden states by O(0.1)
    np.testing.assert_allclose(ours[real], ref[real], atol=1e-4, rtol=1e-4)


def test_minilm_sentence_embedding_matches_torch_mean_pool(minilm, torch_minilm):
    module, variables, _, batch = minilm
    ids, mask = batch["input_ids"], batch["attention_mask"]
    ours = np.asarray(module.apply(variables, ids, mask, method=BertEncoder.sentence_embedding))
    with torch.no_grad():
        h = torch_minilm(torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state
    m = torch.tensor(mask)[..., None].float()
    ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()
    # unit vectors through 6 layers: a few ULPs of the hidden states, CPU-dependent
    np.testing.assert_allclose(ours, ref, atol=5e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=-1), 1.0, atol=1e-5)


def test_minilm_sentence_embedding_matches_sentence_transformers(minilm):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(minilm_path(), device="cpu", local_files_only=True)
    ref = model.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=True)
    module, variables, _, batch = minilm
    ours = module.apply(
        variables,
        batch["input_ids"],
        batch["attention_mask"],
        method=BertEncoder.sentence_embedding,
    )
    np.testing.assert_allclose(np.asarray(ours), ref, atol=5e-5, rtol=0)  # as above


def test_tokenizer_comes_from_the_same_files(minilm):
    _, _, tokenizer, _ = minilm
    assert tokenizer.vocab_size == 30522
    assert tokenizer.convert_tokens_to_ids("[MASK]") == 103


SMALL = dict(
    vocab_size=97,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=40,
)


@pytest.fixture(scope="module")
def small_mlm():
    torch.manual_seed(0)
    hf = transformers.BertForMaskedLM(
        transformers.BertConfig(**SMALL, attn_implementation="eager")
    ).eval()
    module, variables = convert_bert(hf.state_dict(), BertConfig(**SMALL))
    return hf, module, variables


def test_mlm_logits_match_bert_for_masked_lm(small_mlm):
    hf, module, variables = small_mlm
    assert module.with_mlm_head and not module.with_pooler
    rng = np.random.RandomState(0)
    ids = rng.randint(1, 97, size=(2, 9))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    types = (np.arange(9)[None] >= 4).astype(np.int64).repeat(2, 0)
    hidden = module.apply(variables, ids, mask, types)
    logits = np.asarray(module.apply(variables, hidden, method=BertEncoder.mlm_logits))
    with torch.no_grad():
        ref = hf(
            torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types)
        ).logits.numpy()
    real = mask.astype(bool)
    np.testing.assert_allclose(logits[real], ref[real], atol=5e-5, rtol=1e-5)
    # logits at selected positions only (for pseudo-log-likelihood scoring)
    positions = np.array([[1, 3], [0, 5]])
    picked = module.apply(variables, hidden, positions, method=BertEncoder.mlm_logits)
    np.testing.assert_allclose(
        np.asarray(picked), np.take_along_axis(ref, positions[..., None], 1), atol=5e-5, rtol=1e-5
    )


def test_bert_bfloat16_compute_keeps_float32_params(small_mlm):
    _, module, variables = small_mlm
    bf16 = BertEncoder(module.config, with_mlm_head=True, dtype=jnp.bfloat16)
    ids = np.arange(1, 9)[None]
    out = bf16.apply(variables, ids, np.ones_like(ids))
    assert out.dtype == jnp.bfloat16
    ref = module.apply(variables, ids, np.ones_like(ids))
    np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(ref), atol=0.15)
    init = jax.eval_shape(lambda: bf16.init(jax.random.key(0), ids, np.ones_like(ids)))
    dtypes = {x.dtype for x in jax.tree.leaves(init)}
    assert dtypes == {jnp.dtype(jnp.float32)}


def test_bert_forward_mode_agrees_with_reverse_mode(small_mlm):
    """jax.jvp works through the encoder (flax Dense/LayerNorm, jax.nn.dot_product_attention: no
    custom_vjp) and agrees with its vjp (<J t, u> == <t, J^T u>), with a padding mask in play."""
    _, module, variables = small_mlm
    ids = np.arange(1, 9)[None].repeat(2, 0)
    mask = np.ones_like(ids)
    mask[1, 5:] = 0
    word = variables["params"]["word_embeddings"]["embedding"]
    table = word.value if hasattr(word, "value") else word

    def hidden(model, emb):
        params = dict(variables["params"])
        params["word_embeddings"] = {"embedding": emb}
        return model.apply({**variables, "params": params}, ids, mask)

    t = jax.random.normal(jax.random.key(1), table.shape)
    _, jvp_out = jax.jvp(lambda e: hidden(module, e), (table,), (t,))
    u = jax.random.normal(jax.random.key(2), jvp_out.shape)
    _, vjp_fn = jax.vjp(lambda e: hidden(module, e), table)
    (vjp_t,) = vjp_fn(u)
    np.testing.assert_allclose(float(jnp.vdot(jvp_out, u)), float(jnp.vdot(t, vjp_t)), rtol=1e-3)


def test_bert_rejects_bad_input_shapes(small_mlm):
    _, module, variables = small_mlm
    ids = np.ones((2, 5), np.int32)
    with pytest.raises(ValueError, match="attention_mask shape"):
        module.apply(variables, ids, np.ones((2, 4), np.int32))
    with pytest.raises(ValueError, match="input_ids must be"):
        module.apply(variables, ids[0], None)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        module.apply(variables, np.ones((1, 41), np.int32))
    with pytest.raises(ValueError, match="no pooler"):
        module.apply(variables, jnp.zeros((1, 2, 32)), method=BertEncoder.pooled_output)


def test_bert_rejects_out_of_range_ids(small_mlm):
    hf, module, variables = small_mlm
    ids = np.ones((2, 5), np.int32)
    ids[1, 3] = 97  # vocab_size: transformers raises IndexError; a jitted gather would give NaN
    with pytest.raises(IndexError):
        hf(input_ids=torch.tensor(ids, dtype=torch.long))
    with pytest.raises(ValueError, match=r"input_ids values must be in \[0, 97\)"):
        module.apply(variables, ids)
    with pytest.raises(ValueError, match=r"token_type_ids values must be in \[0, 2\)"):
        module.apply(variables, np.ones((2, 5), np.int32), None, np.full((2, 5), 2, np.int32))
    with pytest.raises(ValueError, match="token_type_ids shape"):
        module.apply(variables, np.ones((2, 5), np.int32), None, np.zeros((2, 4), np.int32))
    with pytest.raises(TypeError, match="input_ids must hold integers"):
        module.apply(variables, np.ones((2, 5), np.float32))


def test_load_minilm_rejects_a_directory_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_minilm(str(tmp_path))


def test_load_minilm_inside_the_training_mesh_context(minilm):
    """The training loop preprocesses data inside jax.set_mesh + logical axis rules; loading the
    tower there once failed (metadata stripping constrained abstract shapes to the mesh)."""
    import flax.linen as nn

    from emojax.parallel import LOGICAL_AXIS_RULES, make_mesh

    mesh = make_mesh({"data": 1, "fsdp": -1}, jax.devices()[:1])
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        _, variables, _ = load_minilm()
    assert jax.tree.structure(variables) == jax.tree.structure(minilm[1])
    pairs = zip(jax.tree.leaves(variables), jax.tree.leaves(minilm[1]), strict=True)
    assert all(np.array_equal(a, b) for a, b in pairs)
