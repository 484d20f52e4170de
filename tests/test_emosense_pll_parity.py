"""PLL scoring with our BERT (converted from PyTorch) equals a per-position loop over
transformers' BertForMaskedLM (random small config)."""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from emojax.convert.bert import convert_bert  # noqa: E402
from emojax.models.emosense import pll  # noqa: E402
from emojax.nn.bert import BertConfig, BertEncoder  # noqa: E402

CLS, SEP, PAD, MASK = 1, 2, 0, 3


@pytest.fixture(scope="module")
def bert_pair():
    torch.manual_seed(0)
    hf_config = transformers.BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=PAD,
    )
    torch_model = transformers.BertForMaskedLM(hf_config).eval()
    state = {k: v.detach().numpy() for k, v in torch_model.state_dict().items()}
    module, variables = convert_bert(state, BertConfig.from_dict(hf_config.to_dict()))
    return torch_model, module, variables


def torch_pll(torch_model, ids, mask, scorable):
    """Reference: one BertForMaskedLM forward per masked position."""
    out = np.zeros(len(ids))
    with torch.no_grad():
        for b in range(len(ids)):
            for t in np.flatnonzero(scorable[b]):
                masked = torch.tensor(ids[b : b + 1], dtype=torch.long)
                masked[0, t] = MASK
                logits = torch_model(
                    input_ids=masked, attention_mask=torch.tensor(mask[b : b + 1])
                ).logits
                out[b] += torch.log_softmax(logits[0, t].double(), -1)[int(ids[b, t])].item()
    return out


def test_pll_matches_bert_for_masked_lm(bert_pair):
    torch_model, module, variables = bert_pair
    rng = np.random.default_rng(0)
    ids = rng.integers(4, 40, size=(3, 7)).astype(np.int32)
    mask = np.ones_like(ids)
    ids[:, 0] = CLS
    ids[:, -1] = SEP
    ids[2, 4:] = [SEP, PAD, PAD]  # a shorter, padded sentence
    mask[2, 5:] = 0
    scorable = pll.scorable_positions(ids, mask, special_ids=[CLS, SEP, PAD])

    encode = lambda i, m: module.apply(variables, i, m)
    head = lambda h: module.apply(variables, h[:, None], method=BertEncoder.mlm_logits)[:, 0]
    score = jax.jit(lambda i, m, s: pll.pll_scores(encode, head, i, m, s, MASK))
    got = np.asarray(score(ids, mask, scorable))
    np.testing.assert_allclose(
        got, torch_pll(torch_model, ids, mask, scorable), rtol=1e-4, atol=1e-4
    )
