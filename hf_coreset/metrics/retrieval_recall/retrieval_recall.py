"""`evaluate` metric module: image-text retrieval recall (TR@1/5/10, IR@1/5/10, r_mean).

Loads offline by path, no Hub access:

    >>> import evaluate, hf_coreset.metrics
    >>> recall = evaluate.load(hf_coreset.metrics.RETRIEVAL_RECALL_PATH)
    >>> recall.compute(image_embeddings=[[1.0, 0.0], [0.0, 1.0]], text_embeddings=[[1.0, 0.1], [0.1, 1.0]],
    ...                labels=[0, 1])["r_mean"]
    100.0

Each added row is one image-text pair: its image embedding, its text embedding and a label. Pairs with
equal labels are relevant to each other: pass the row index for instance-level relevance (each image has
its own caption), or the class for class-level relevance (captions built from class names). Similarity is
cosine.
"""

import datasets
import evaluate

from hf_coreset.metrics.retrieval import retrieval_recall_from_embeddings

_DESCRIPTION = __doc__
_KWARGS_DESCRIPTION = """
Args:
    image_embeddings: list of image vectors, one per pair.
    text_embeddings: list of text vectors (same width as the image vectors), one per pair.
    labels: list of ints; pairs with equal labels are relevant to each other (row index: instance level).
Returns:
    TR@1, TR@5, TR@10, IR@1, IR@5, IR@10 and r_mean, in percent.
"""


class RetrievalRecall(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "image_embeddings": datasets.Sequence(datasets.Value("float32")),
                "text_embeddings": datasets.Sequence(datasets.Value("float32")),
                "labels": datasets.Value("int64"),
            }),
        )

    def _compute(self, image_embeddings, text_embeddings, labels):
        return retrieval_recall_from_embeddings(image_embeddings, text_embeddings, labels)
