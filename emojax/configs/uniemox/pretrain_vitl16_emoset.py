"""UniEmoX pretraining at paper scale: ViT-L/16 on EmoSet-118K, CLIP ViT-B/16 teacher, FSDP, bf16.

For a TPU pod / GPU cluster (one process per host; ``launch/``)::

    emojax convert --model=clip --input=CLIP_VIT_B16_DIR --output=clip_b16.safetensors
    emojax train --config=emojax/configs/uniemox/pretrain_vitl16_emoset.py --workdir=gs://B/run \
        --config.data.manual_dir=EMOSET_DIR \
        --config.model.teacher.path=clip_b16.safetensors \
        --config.model.teacher.hf_config=CLIP_VIT_B16_DIR/config.json \
        --config.model.teacher.tokenizer=CLIP_VIT_B16_DIR

``EMOSET_DIR``: the extracted EmoSet-118K (info.json, train/val/test.json, image/, annotation/;
``emojax.data.emoset`` prepares it once under ``data.data_dir``). ``CLIP_VIT_B16_DIR``: the local
Hugging Face CLIP folder the weights were converted from (config.json, tokenizer files; nothing
is downloaded).

Paper recipe (REFERENCES.md): mask ratio 0.9, decoder 512 x 8 (its decoder_embed gives the 512-d
view features compared with CLIP's 512-d embeddings), AdamW (0.9, 0.95), wd 0.05,
lr 1e-3 x batch / 256, 40 warmup epochs, 100-800 epochs (here: 400 epochs of 118,102 images at
batch 4096 = 11,533 steps). Parameters and optimizer state are sharded over ``fsdp``; compute in
bfloat16, parameters float32; blocks rematerialised.

Per-device memory of the train step, from the compiled step on fake CPU devices (XLA's
``memory_analysis()``; arguments + outputs + temporaries, aliased donations counted once)::

    python -m emojax.models.uniemox.memory \
        --config=emojax/configs/uniemox/pretrain_vitl16_emoset.py \
        --devices=16 --batch=256

Measured: 16 devices (fsdp 16), global batch 256: 5.99 GiB per device (docs/uniemox.md).
Data (``emojax/models/uniemox/emoset.py``): the EmoSet photos resized to 224 (no person box: the
person view is the ``person_fallback`` random crop), captions from EmoSet's attributes in the six
templates (absent attributes leave their sentence out), tokenised with the CLIP tokenizer of
``model.teacher.tokenizer`` (77 ids, EOS last); the prompt table has one row per EmoSet image
(train, validation, test), computed once at the first start (a pass over the dataset).
"""

import ml_collections

from emojax.configs.uniemox import common


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.method = "uniemox"
    config.seed = 0
    config.stages_root = common.stages_root()
    m = config.model = ml_collections.ConfigDict()
    m.encoder = ml_collections.ConfigDict(
        dict(
            image_size=224,
            patch_size=16,
            hidden_size=1024,
            num_layers=24,
            num_heads=16,
            mlp_dim=4096,
        )
    )
    m.decoder = ml_collections.ConfigDict(
        dict(hidden_size=512, num_layers=8, num_heads=16, mlp_dim=2048)
    )
    m.teacher = ml_collections.ConfigDict(
        dict(
            path="",  # the converted CLIP ViT-B/16 (safetensors) or a clip_teacher workdir
            hf_config="",  # its Hugging Face config.json; empty: the sizes below
            tokenizer="",  # the local Hugging Face CLIP folder (the captions' BPE tokenizer)
            image_size=224,
            patch_size=16,
            hidden_size=768,
            num_layers=12,
            num_heads=12,
            mlp_dim=3072,
            text_hidden_size=512,
            text_num_layers=12,
            text_num_heads=8,
            text_mlp_dim=2048,
            max_length=77,
            projection_dim=512,
        )
    )
    m.views = ("scene", "person")
    m.person_fallback = "random_crop"
    m.mask_ratio = 0.9
    m.person_mask_ratio = 0.9
    m.norm_pix = True
    m.fixed_pos_embedding = True  # MAE: fixed 2-D sin-cos tables, not trained
    m.flip = True
    m.remat = True
    m.w_mae = 1.0
    m.w_image = 1.0
    m.w_prompt = 1.0
    common.image_norm(m)
    config.data = ml_collections.ConfigDict(
        dict(
            source="emoset",
            manual_dir="",  # the extracted EmoSet-118K folder
            data_dir="",
            image_size=224,
            # the prompt table's rows (train + validation + test) for the memory estimate; the
            # emoset source takes the split sizes from the data
            num_train=118_102,
            num_validation=0,
            num_test=0,
            global_batch_size=4096,
            shuffle_seed=0,
            worker_count=8,
        )
    )
    config.optimizer = ml_collections.ConfigDict(
        dict(
            name="adamw",
            learning_rate=1e-3 * 4096 / 256,
            warmup_steps=1153,
            weight_decay=0.05,
            b1=0.9,
            b2=0.95,
        )
    )
    config.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))
    config.train = ml_collections.ConfigDict(
        dict(
            num_steps=11_533,
            log_every=50,
            eval_every=0,
            save_every=1000,
            keep_last=2,
            compute_dtype="bfloat16",
        )
    )
    config.eval = ml_collections.ConfigDict(dict(split="validation", num_batches=0))
    return config
