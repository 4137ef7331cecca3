"""pyannote's VBx clustering with leaner iterations: NumPy on the CPU, torch on a GPU.

community-1 clusters the (window, speaker) embeddings of a chunk in three steps: agglomerative
clustering (AHC) of the normalised embeddings, Variational Bayes (VBx) started from the AHC clusters in
the PLDA space, then each embedding assigned to the closest VBx centroid. VBx is the costly one: each of
its up to 20 iterations works on (embeddings x AHC clusters) matrices, and AHC leaves hundreds of small
clusters on a long meeting (30 minutes, ~2,900 embeddings, ~450 clusters: 1.8-2.0 s on two CPU cores in
pyannote's code, much of it in `scipy.special.logsumexp` and in computing the same (embeddings x
clusters) sums and exponentials twice). Here each iteration builds the log-likelihoods once, in place,
and takes the responsibilities from the exponentials that the log-sum-exp already computed: 0.8 s on
the same cores. On a GPU the same iterations run in torch on the pipeline's device. AHC (SciPy) and
the assignment stay pyannote's.

Float64 sums in a different order differ from pyannote's in the last bits (~1e-15 after 20 iterations),
so responsibilities and centroids are equal to float tolerance, and the clusters chosen from them are
the same; tests/reprocess/test_vbx_clustering.py compares both.
"""
import numpy as np


def install(pipeline) -> bool:
    """Use this clustering for this pipeline instance if it clusters with pyannote's VBx; says whether it did."""
    try:
        from pyannote.audio.pipelines.clustering import VBxClustering
    except ImportError:
        return False
    clustering = getattr(pipeline, "clustering", None)
    if type(clustering) is not VBxClustering:
        return isinstance(clustering, vbx_clustering_class())
    # The instance keeps its hyper-parameters (threshold, Fa, Fb) and PLDA; only its class changes.
    clustering.__class__ = vbx_clustering_class()
    clustering.device = getattr(pipeline, "device", None)
    return True


def uninstall(pipeline) -> None:
    from pyannote.audio.pipelines.clustering import VBxClustering

    if isinstance(getattr(pipeline, "clustering", None), vbx_clustering_class()):
        pipeline.clustering.__class__ = VBxClustering


def vbx(ahc_clusters: np.ndarray, fea: np.ndarray, phi: np.ndarray, Fa: float, Fb: float, max_iters: int = 20,
        init_smoothing: float = 7.0, epsilon: float = 1e-4, device=None) -> tuple[np.ndarray, np.ndarray]:
    """`pyannote.audio.utils.vbx.cluster_vbx`: (responsibilities (embeddings, clusters), speaker priors).
    With a torch `device` the iterations run in torch there; without, in NumPy."""
    from scipy.special import softmax

    qinit = np.zeros((len(ahc_clusters), ahc_clusters.max() + 1))
    qinit[range(len(ahc_clusters)), ahc_clusters.astype(int)] = 1.0
    qinit = qinit if init_smoothing < 0 else softmax(qinit * init_smoothing, axis=1)
    args = (np.ascontiguousarray(fea, dtype=np.float64), np.ascontiguousarray(phi, dtype=np.float64), qinit, Fa, Fb, max_iters, epsilon)
    if device is not None:
        return _iterate_torch(*args, device=device)
    return _iterate_numpy(*args)


# The two functions below are the same iterations (equation numbers of Landini et al., as in pyannote's
# vbx.py), in NumPy and in torch.

def _iterate_numpy(X, Phi, gamma, Fa, Fb, max_iters, epsilon):
    D = X.shape[1]
    pi = np.full(gamma.shape[1], 1.0 / gamma.shape[1])
    G = -0.5 * (np.sum(X**2, axis=1, keepdims=True) + D * np.log(2 * np.pi))  # per-embedding constant of (23)
    rho = X * np.sqrt(Phi)  # (18)
    previous = None
    for ii in range(max_iters):
        invL = 1.0 / (1 + Fa / Fb * gamma.sum(axis=0, keepdims=True).T * Phi)  # (17)
        alpha = Fa / Fb * invL * (gamma.T @ rho)  # (16)
        log_p = rho @ alpha.T  # (23), then the log prior, built in place
        log_p -= 0.5 * ((invL + alpha**2) @ Phi)
        log_p += G
        log_p *= Fa
        log_p += np.log(pi + 1e-8)
        top = log_p.max(axis=1, keepdims=True)
        log_p -= top
        gamma = np.exp(log_p, out=log_p)
        total = gamma.sum(axis=1, keepdims=True)
        gamma /= total  # exp(log_p - logsumexp(log_p))
        pi = gamma.sum(axis=0)
        pi = pi / pi.sum()
        elbo = float(np.sum(top + np.log(total)) + Fb * 0.5 * np.sum(np.log(invL) - invL - alpha**2 + 1))  # (25)
        if ii > 0 and elbo - previous < epsilon:
            break
        previous = elbo
    return gamma, pi


def _iterate_torch(X, Phi, gamma, Fa, Fb, max_iters, epsilon, device):
    import torch

    X, Phi, gamma = (torch.as_tensor(a, device=device) for a in (X, Phi, gamma))
    D = X.shape[1]
    pi = torch.full((gamma.shape[1],), 1.0 / gamma.shape[1], dtype=torch.float64, device=X.device)
    G = -0.5 * (torch.sum(X**2, dim=1, keepdim=True) + D * np.log(2 * np.pi))
    rho = X * torch.sqrt(Phi)
    previous = None
    for ii in range(max_iters):
        invL = 1.0 / (1 + Fa / Fb * gamma.sum(dim=0, keepdim=True).T * Phi)
        alpha = Fa / Fb * invL * (gamma.T @ rho)
        log_p = rho @ alpha.T
        log_p -= 0.5 * ((invL + alpha**2) @ Phi)
        log_p += G
        log_p *= Fa
        log_p += torch.log(pi + 1e-8)
        top = log_p.amax(dim=1, keepdim=True)
        gamma = torch.exp_(log_p.sub_(top))
        total = gamma.sum(dim=1, keepdim=True)
        gamma /= total
        pi = gamma.sum(dim=0)
        pi = pi / pi.sum()
        elbo = float(torch.sum(top + torch.log(total)) + Fb * 0.5 * torch.sum(torch.log(invL) - invL - alpha**2 + 1))
        if ii > 0 and elbo - previous < epsilon:
            break
        previous = elbo
    return gamma.cpu().numpy(), pi.cpu().numpy()


_classes: dict = {}  # the class derives from pyannote's, so it is built on first use (pyannote loads slowly)


def vbx_clustering_class():
    if "vbx" not in _classes:
        _classes["vbx"] = _vbx_clustering_class()
    return _classes["vbx"]


def _vbx_clustering_class():
    from pyannote.audio.pipelines.clustering import VBxClustering

    class LeanVBxClustering(VBxClustering):
        """pyannote's VBxClustering.__call__ with `vbx` in place of `cluster_vbx`; everything else as there."""

        device = None

        def to(self, device):
            self.device = device  # followed by SpeakerDiarization.to
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

            # torch on a GPU; on the CPU NumPy's float64 products are as fast and torch's exp is slower
            device = self.device if getattr(self.device, "type", "cpu") != "cpu" else None
            q, sp = vbx(ahc_clusters, self.plda(train_embeddings), self.plda.phi, Fa=self.Fa, Fb=self.Fb, max_iters=20, device=device)

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

    return LeanVBxClustering

