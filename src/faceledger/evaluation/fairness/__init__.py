"""False-match and false-non-match rates of a labelled image set, overall and per group.

The data is a folder ``DIR/<identity>/<images>`` (LFW's layout). Every image is analysed with
one pack and one face is kept per image — the largest (what the API's search and compare use)
or the one nearest the image centre (LFW's convention: its photos are centred on the labelled
person, and a bystander can be larger) — and then **every** pair of images is scored: pairs
of one identity are genuine, pairs of two identities are impostors. A set of n images has
n(n-1)/2 pairs (LFW's development split: ≈45 M), so the scores are computed in row blocks
and only histogrammed, on the calibrated Similarity scale in bins ``BIN_WIDTH`` wide; a
threshold on that grid gives exact counts:

* FMR(t)  = impostor pairs with Similarity ≥ t / impostor pairs
* FNMR(t) = genuine pairs with Similarity < t / genuine pairs

Groups come from a CSV ``identity,group``. A group's FMR counts the impostor pairs *within*
the group (both identities in it), the convention of NIST FRVT's demographic-differential
reports; impostor pairs across two groups are counted separately. Images without a face
(failures to acquire) take part in no pair and are counted on their own.

Few errors make a rate unstable: with fewer than ``MIN_ERRORS_FOR_RATE`` errors a rate is
reported as its one-sided 95% upper confidence bound ("≤ x") rather than as a bare number.

The package has one job a module: ``images`` (the images and one face's embedding each,
cached), ``groups`` (the groups CSV), ``bins`` (the Similarity grid), ``pairs`` (scoring every
pair), ``rates`` (rates and their confidence bounds) and ``summary`` (the numbers of the report).
"""

from faceledger.evaluation.fairness.bins import (
    BIN_WIDTH,
    N_BINS,
    PUBLISHED_THRESHOLDS,
    SIMILARITY_EDGES,
    similarity_bins,
    threshold_bin,
)
from faceledger.evaluation.fairness.groups import (
    UNASSIGNED,
    GroupFile,
    Grouping,
    assign_groups,
    image_counts,
    parse_groups,
    read_groups,
)
from faceledger.evaluation.fairness.images import (
    FACE_CHOICES,
    EmbeddedImages,
    Progress,
    choose_face,
    embed_dataset,
    list_images,
)
from faceledger.evaluation.fairness.pairs import (
    PairHistograms,
    ToSimilarity,
    excluded_index_pairs,
    false_match_sources,
    histogram_pairs,
)
from faceledger.evaluation.fairness.rates import (
    CONFIDENCE,
    MIN_ERRORS_FOR_RATE,
    Rate,
    binomial_upper_bound,
    det_curve,
    false_match,
    false_non_match,
    weighted_fnmr,
)
from faceledger.evaluation.fairness.summary import summarise

__all__ = [
    "BIN_WIDTH",
    "CONFIDENCE",
    "FACE_CHOICES",
    "MIN_ERRORS_FOR_RATE",
    "N_BINS",
    "PUBLISHED_THRESHOLDS",
    "SIMILARITY_EDGES",
    "UNASSIGNED",
    "EmbeddedImages",
    "GroupFile",
    "Grouping",
    "PairHistograms",
    "Progress",
    "Rate",
    "ToSimilarity",
    "assign_groups",
    "binomial_upper_bound",
    "choose_face",
    "det_curve",
    "embed_dataset",
    "excluded_index_pairs",
    "false_match",
    "false_match_sources",
    "false_non_match",
    "histogram_pairs",
    "image_counts",
    "list_images",
    "parse_groups",
    "read_groups",
    "similarity_bins",
    "summarise",
    "threshold_bin",
    "weighted_fnmr",
]
