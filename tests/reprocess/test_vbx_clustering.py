"""Leaner VBx iterations (NumPy on the CPU, torch on a GPU) give pyannote's clusters, and its numbers to
float64 rounding."""
import numpy as np
import pytest
from pyannote.audio.core.plda import PLDA
from pyannote.audio.pipelines.clustering import VBxClustering
from pyannote.audio.utils.vbx import cluster_vbx
from pyannote.core import SlidingWindow, SlidingWindowFeature
from scipy.cluster.hierarchy import fcluster, linkage

from tests.reprocess.pyannote_models import write_plda
from transcription.reprocess import vbx_clustering

FRAMES = 589


@pytest.fixture(scope="module")
def plda(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plda")
    write_plda(folder)
    return PLDA(folder / "xvec_transform.npz", folder / "plda.npz")


def meeting(voices=4, chunks=150, seed=0):
    """(embeddings (chunks, 3, 256), binary segmentations): each window hears two or three of `voices`."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((voices, 256))
    embeddings = np.full((chunks, 3, 256), np.nan, dtype=np.float32)
    data = np.zeros((chunks, FRAMES, 3), dtype=np.float32)
    for c in range(chunks):
        heard = rng.choice(voices, size=rng.integers(2, 4), replace=False)
        bounds = np.sort(rng.choice(np.arange(1, FRAMES), size=len(heard) - 1, replace=False))
        for slot, (voice, lo, hi) in enumerate(zip(heard, [0, *bounds], [*bounds, FRAMES])):
            data[c, lo:hi, slot] = 1
            embeddings[c, slot] = centres[voice] + 0.55 * rng.standard_normal(256)
    return embeddings, SlidingWindowFeature(data, SlidingWindow(start=0.0, duration=10.0, step=1.0))


def clustering(plda):
    instance = VBxClustering(plda)
    instance.instantiate({"threshold": 0.6, "Fa": 0.07, "Fb": 0.8})
    return instance


@pytest.mark.parametrize("device", [None, "cpu"])  # NumPy, and torch's iterations (a GPU's) run on the CPU
def test_vbx_iterations_equal_pyannotes(plda, device):
    embeddings, segmentations = meeting()
    train, _, _ = clustering(plda).filter_embeddings(embeddings, segmentations=segmentations)
    normed = train / np.linalg.norm(train, axis=1, keepdims=True)
    ahc = fcluster(linkage(normed, method="centroid", metric="euclidean"), 0.6, criterion="distance") - 1
    _, ahc = np.unique(ahc, return_inverse=True)
    fea = plda(train)
    assert ahc.max() + 1 > 4, "AHC left as many clusters as voices: VBx would have nothing to do"
    theirs_q, theirs_pi = cluster_vbx(ahc, fea, plda.phi, Fa=0.07, Fb=0.8, maxIters=20)
    ours_q, ours_pi = vbx_clustering.vbx(ahc, fea, plda.phi, Fa=0.07, Fb=0.8, max_iters=20, device=device)
    np.testing.assert_allclose(ours_q, theirs_q, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours_pi, theirs_pi, rtol=1e-9, atol=1e-12)
    assert np.array_equal(ours_pi > 1e-7, theirs_pi > 1e-7)


@pytest.mark.parametrize("counts", [{}, {"num_clusters": 3}, {"max_clusters": 2}, {"min_clusters": 6}])
def test_clusters_equal_pyannotes(plda, counts):
    embeddings, segmentations = meeting()
    counts = {"num_clusters": None, "min_clusters": 1, "max_clusters": np.inf, **counts}
    theirs = clustering(plda)
    ours = clustering(plda)
    ours.__class__ = vbx_clustering.vbx_clustering_class()
    hard, soft, centroids = theirs(embeddings.copy(), segmentations=segmentations, **counts)
    our_hard, our_soft, our_centroids = ours(embeddings.copy(), segmentations=segmentations, **counts)
    np.testing.assert_array_equal(our_hard, hard)
    np.testing.assert_allclose(our_soft, soft, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(our_centroids, centroids, rtol=1e-9, atol=1e-12)
    assert len(np.unique(hard[hard >= 0])) > 1


def test_installed_on_a_loaded_pipeline_and_removable(pyannote_dir):
    from transcription.reprocess import diarize

    [pipeline] = diarize.load_pipelines(pyannote_dir, "cpu")
    assert isinstance(pipeline.clustering, vbx_clustering.vbx_clustering_class())
    assert pipeline.clustering.device == pipeline.device
    threshold = pipeline.clustering.threshold
    vbx_clustering.uninstall(pipeline)
    try:
        assert type(pipeline.clustering) is VBxClustering and pipeline.clustering.threshold == threshold
    finally:
        assert vbx_clustering.install(pipeline)
    assert pipeline.clustering.threshold == threshold
