"""pyannote's VBx clustering with its iterations in torch, on the pipeline's device.

community-1 clusters the (window, speaker) embeddings of a chunk in three steps: agglomerative
clustering (AHC) of the normalised embeddings, Variational Bayes (VBx) started from the AHC clusters in
the PLDA space, then each embedding assigned to the closest VBx centroid. VBx is the costly one: each of
its up to 20 iterations multiplies (embeddings x AHC clusters) matrices, and AHC leaves hundreds of small
clusters on a long meeting (30 minutes, ~3,000 embeddings, ~450 clusters: 1.6 s on two CPU cores in
pyannote's NumPy/SciPy, most of it in `scipy.special.logsumexp` and the float64 products). Here the same
float64 arithmetic runs in torch on the pipeline's device (a GPU does it in milliseconds), with the
shared sum computed once per iteration rather than twice. AHC (SciPy) and the assignment stay pyannote's.

Float64 sums in a different order differ from pyannote's in the last bits (~1e-15 after 20 iterations),
so responsibilities and centroids are equal to float tolerance, and the clusters chosen from them are
the same; tests/reprocess/test_vbx_clustering.py compares both. Installed only on pipelines that run on
a GPU: on the CPU, torch's float64 products are no faster than NumPy's (slower on a loaded machine), so
a CPU pipeline keeps pyannote's.
"""
import numpy as np


def install(pipeline, on_cpu: bool = False) -> bool:
    """Use this clustering for this pipeline instance if it clusters with pyannote's VBx on a GPU (or on
    the CPU too with `on_cpu`); says whether it did."""
    try:
        from pyannote.audio.pipelines.clustering import VBxClustering
    except ImportError:
        return False
    clustering = getattr(pipeline, "clustering", None)
    device = getattr(pipeline, "device", None)
    if not on_cpu and getattr(device, "type", "cpu") == "cpu":
        return False
    if type(clustering) is not VBxClustering:
        return isinstance(clustering, torch_vbx_clustering())
    # The instance keeps its hyper-parameters (threshold, Fa, Fb) and PLDA; only its class changes.
    clustering.__class__ = torch_vbx_clustering()
    clustering.device = getattr(pipeline, "device", None)
    return True


def uninstall(pipeline) -> None:
    from pyannote.audio.pipelines.clustering import VBxClustering

    if isinstance(getattr(pipeline, "clustering", None), torch_vbx_clustering()):
        pipeline.clustering.__class__ = VBxClustering


def vbx(ahc_clusters: np.ndarray, fea: np.ndarray, phi: np.ndarray, Fa: float, Fb: float, max_iters: int = 20,
        init_smoothing: float = 7.0, epsilon: float = 1e-4, device=None) -> tuple[np.ndarray, np.ndarray]:
    """`pyannote.audio.utils.vbx.cluster_vbx`: (responsibilities (embeddings, clusters), speaker priors)."""
    import torch
    from scipy.special import softmax

    qinit = np.zeros((len(ahc_clusters), ahc_clusters.max() + 1))
    qinit[range(len(ahc_clusters)), ahc_clusters.astype(int)] = 1.0
    qinit = qinit if init_smoothing < 0 else softmax(qinit * init_smoothing, axis=1)

    as_tensor = lambda x: torch.as_tensor(np.ascontiguousarray(x, dtype=np.float64), device=device)  # noqa: E731
    X, Phi, gamma = as_tensor(fea), as_tensor(phi), as_tensor(qinit)
    D = X.shape[1]
    pi = torch.full((gamma.shape[1],), 1.0 / gamma.shape[1], dtype=torch.float64, device=X.device)
    G = -0.5 * (torch.sum(X**2, dim=1, keepdim=True) + D * np.log(2 * np.pi))  # per-embedding constant of (23)
    rho = X * torch.sqrt(Phi)  # (18)
    previous = None
    for ii in range(max_iters):
        invL = 1.0 / (1 + Fa / Fb * gamma.sum(dim=0, keepdim=True).T * Phi)  # (17)
        alpha = Fa / Fb * invL * (gamma.T @ rho)  # (16)
        log_p = Fa * (rho @ alpha.T - 0.5 * ((invL + alpha**2) @ Phi) + G)  # (23)
        log_p += torch.log(pi + 1e-8)
        log_p_x = torch.logsumexp(log_p, dim=-1, keepdim=True)
        gamma = torch.exp(log_p - log_p_x)
        pi = gamma.sum(dim=0)
        pi = pi / pi.sum()
        elbo = float(log_p_x.sum() + Fb * 0.5 * torch.sum(torch.log(invL) - invL - alpha**2 + 1))  # (25)
        if ii > 0 and elbo - previous < epsilon:
            break
        previous = elbo
    return gamma.cpu().numpy(), pi.cpu().numpy()


_classes: dict = {}  # the class derives from pyannote's, so it is built on first use (pyannote loads slowly)


def torch_vbx_clustering():
    if "vbx" not in _classes:
        _classes["vbx"] = _vbx_clustering_class()
    return _classes["vbx"]


def _vbx_clustering_class():
    from pyannote.audio.pipelines.clustering import VBxClustering

    class TorchVBxClustering(VBxClustering):
        """pyannote's VBxClustering.__call__ with `vbx` in place of `cluster_vbx`; everything else as there."""

        device = None

        def to(self, device):
            self.device = device  # followed by SpeakerDiarization.to (float64 on the CPU is fine, only slower)
            return self

        def __call__(self, embeddings, segmentations=None, num_clusters=None, min_clusters=None, max_clusters=None, **kwargs):
            from einops import rearrange
            from scipy.cluster.hierarchy import fcluster, linkage
            from scipy.spatial.distance import cdist
            from sklearn.cluster import KMeans

            constrained_assignment = self.constrained_assignment
            train_embeddings, _, _ = self.filter_embeddings(embeddings, segmentations=segmentations)
            if train_embeddings.shape[0] < 2:
                return VBxClustering.__call__(self, embeddings, segmentations=segmentations, num_clusters=num_clusters,
                                              min_clusters=min_clusters, max_clusters=max_clusters, **kwargs)

            train_embeddings_normed = train_embeddings / np.linalg.norm(train_embeddings, axis=1, keepdims=True)
            dendrogram = linkage(train_embeddings_normed, method="centroid", metric="euclidean")
            ahc_clusters = fcluster(dendrogram, self.threshold, criterion="distance") - 1
            _, ahc_clusters = np.unique(ahc_clusters, return_inverse=True)

            q, sp = vbx(ahc_clusters, self.plda(train_embeddings), self.plda.phi, Fa=self.Fa, Fb=self.Fb, max_iters=20, device=self.device)

            num_chunks, num_speakers, dimension = embeddings.shape
            W = q[:, sp > 1e-7]
            centroids = W.T @ train_embeddings.reshape(-1, dimension) / W.sum(0, keepdims=True).T

            auto_num_clusters, _ = centroids.shape
            if auto_num_clusters < min_clusters:
                num_clusters = min_clusters
            elif auto_num_clusters > max_clusters:
                num_clusters = max_clusters
            if num_clusters and num_clusters != auto_num_clusters:
                constrained_assignment = False
                kmeans_clusters = KMeans(n_clusters=num_clusters, n_init=3, random_state=42, copy_x=False).fit_predict(train_embeddings_normed)
                centroids = np.vstack([np.mean(train_embeddings[kmeans_clusters == k], axis=0) for k in range(num_clusters)])

            e2k_distance = rearrange(cdist(rearrange(embeddings, "c s d -> (c s) d"), centroids, metric=self.metric),
                                     "(c s) k -> c s k", c=num_chunks, s=num_speakers)
            soft_clusters = 2 - e2k_distance
            if constrained_assignment:
                const = soft_clusters.min() - 1.0
                soft_clusters[segmentations.data.sum(1) == 0] = const
                hard_clusters = self.constrained_argmax(soft_clusters)
            else:
                hard_clusters = np.argmax(soft_clusters, axis=2)
            return hard_clusters.reshape(num_chunks, num_speakers), soft_clusters, centroids

    return TorchVBxClustering

