"""The info.json of the tiny fake EmoSet folders the tests write (emoset builder, UniEmoX)."""

from emojax.data import emoset


def emoset_info() -> dict:
    """``{attribute: {"label2idx": {name: index}}}`` for the eight emotions, brightness and
    colorfulness 0.0..1.0, two scenes, three objects, two expressions, one action."""
    return {
        "emotion": {"label2idx": {e: i for i, e in enumerate(emoset.EMOTIONS)}},
        "brightness": {"label2idx": {str(v / 10): v for v in range(11)}},
        "colorfulness": {"label2idx": {str(v / 10): v for v in range(11)}},
        "scene": {"label2idx": {"beach": 0, "street": 1}},
        "object": {"label2idx": {"dog": 0, "car": 1, "tree": 2}},
        "facial_expression": {"label2idx": {"happy": 0, "sad": 1}},
        "human_action": {"label2idx": {"running": 0}},
    }
