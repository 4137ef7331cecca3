"""A random-weight pyannote speaker-diarization pipeline folder, built offline, real architectures.

Same layout as an installed speaker-diarization-community-1 (see transcription/reprocess/DIARIZATION.md):
config.yaml, segmentation/pytorch_model.bin (PyanNet: SincNet + LSTM, powerset of 3 speakers, 10 s
chunks, as segmentation-3.0), embedding/pytorch_model.bin (WeSpeaker ResNet34, 256-dim) and
plda/{xvec_transform,plda}.npz. `Pipeline.from_pretrained(folder)` loads it through the real code path.
With random weights the speakers it finds mean nothing; tests use it for plumbing, not accuracy.
"""
from pathlib import Path

import numpy as np
import torch

CONFIG_YAML = """\
dependencies:
  pyannote.audio: {version}
pipeline:
  name: pyannote.audio.pipelines.SpeakerDiarization
  params:
    clustering: {clustering}
    embedding: $model/embedding
    embedding_batch_size: 32
    embedding_exclude_overlap: true
    plda: $model/plda
    segmentation: $model/segmentation
    segmentation_batch_size: 32
    segmentation_step: {segmentation_step}
params:
  clustering:
    threshold: {threshold}
    Fa: 0.07
    Fb: 0.8
  segmentation:
    min_duration_off: 0.0
"""


def _save_checkpoint(model, path: Path) -> None:
    """What Lightning's checkpoint holds for `Model.from_pretrained`: weights, hyper-parameters, pyannote metadata."""
    import lightning
    import pyannote.audio

    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    model.on_save_checkpoint(checkpoint)
    checkpoint["pyannote.audio"]["versions"]["pyannote.audio"] = pyannote.audio.__version__
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)


def segmentation_model(seed: int = 0):
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.segmentation import PyanNet

    torch.manual_seed(seed)
    model = PyanNet(sincnet={"stride": 10}, lstm={"hidden_size": 128, "num_layers": 4, "bidirectional": True, "monolithic": True, "dropout": 0.5}, linear={"hidden_size": 128, "num_layers": 2})
    model.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION, resolution=Resolution.FRAME, duration=10.0,
        min_duration=10.0, warm_up=(0.0, 0.0), classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2, permutation_invariant=True,
    )
    model.build()
    return model.eval()


def embedding_model(seed: int = 0):
    from pyannote.audio.models.embedding import WeSpeakerResNet34

    torch.manual_seed(seed)
    model = WeSpeakerResNet34()
    model.specifications = _embedding_specifications()
    model.build()
    return model.eval()


def _embedding_specifications():
    from pyannote.audio.core.task import Problem, Resolution, Specifications

    return Specifications(problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=3.0)


def write_plda(folder: Path, *, dimension: int = 256, lda_dimension: int = 128, seed: int = 0) -> None:
    """A well-conditioned random PLDA: whitening, LDA to 128 dims and a diagonal between-class model."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lda = np.linalg.qr(rng.standard_normal((dimension, lda_dimension)))[0]
    np.savez(folder / "xvec_transform.npz", mean1=np.zeros(dimension), mean2=np.zeros(lda_dimension), lda=lda)
    tr = np.linalg.qr(rng.standard_normal((lda_dimension, lda_dimension)))[0]
    np.savez(folder / "plda.npz", mu=np.zeros(lda_dimension), tr=tr, psi=np.linspace(5.0, 0.5, lda_dimension))


def build_pyannote_dir(folder: Path, *, seed: int = 0, clustering: str = "VBxClustering", threshold: float = 0.6,
                       segmentation_step: float = 0.1) -> Path:
    """`segmentation_step` is the hop between 10 s windows as a fraction of them (0.1 as released);
    tests on CPU use 1.0, ten times fewer windows and embeddings."""
    import pyannote.audio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _save_checkpoint(segmentation_model(seed), folder / "segmentation" / "pytorch_model.bin")
    _save_checkpoint(embedding_model(seed), folder / "embedding" / "pytorch_model.bin")
    write_plda(folder / "plda", seed=seed)
    (folder / "config.yaml").write_text(CONFIG_YAML.format(version=pyannote.audio.__version__, clustering=clustering, threshold=threshold, segmentation_step=segmentation_step))
    return folder
