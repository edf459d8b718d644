"""GM-NAS (Hu et al., ICLR 2022): split a warmed-up supernet where operations' gradients disagree.

A GM-NAS subspace is a conjunction of partial assignments `{position: allowed choices}`; the
whole space is the empty conjunction. A split is learned one decision at a time and replayed by
`GMNASSplit(decisions=...)`, so a learned split is saved once (`to_json`) and reused.

Use in sequence (the trainer does the epochs; these functions only decide and copy weights):

    crit = GMNASSplit(width_divisor=1)
    nets = FewShotSupernets(crit.split(space))               # one subspace: the one-shot supernet
    ... train nets for the warm-up epochs (e.g. 15) ...
    nets, decisions = split_each(nets, crit, batches, num_groups=2, rng=random.Random(seed))
    ... rebuild the optimizer (new parameters; see `source_indices`), train on (e.g. to 30) ...
    nets, decisions = split_each(nets, crit, batches, num_groups=2, rng=rng)  # 2 -> 4 supernets
    (run_dir / "gmnas-split.json").write_text(crit.to_json())  # then continue training

`choose_split` + `split_supernets` do the same for one subspace at a time.

Rules chosen here, where the paper leaves room:
- Shared weights of a position: every parameter except the position's own operation modules,
  found generically from `Supernet.subnet_parameters`: a parameter is owned by the position when,
  on every probe subnet that uses it, exactly one choice at the position uses it (and always the
  same one). Parameters a draw leaves untouched get zero gradient, so vectors align. A supernet that
  does not override `subnet_parameters` owns nothing: all its parameters are compared.
- Draws are paired, as in the authors' code: per sample, one subnet is drawn uniformly from the
  parent subspace and only the position's choice is changed; a choice for which that subnet is
  invalid gets its own uniform draw among the valid subnets with that choice. Gradients are
  averaged over samples and batches (the same batches for every choice), then compared by cosine
  (the authors' code averages per-draw cosine matrices instead).
- A choice with no valid subnet in the parent (an Identity forbidden at a position) is left out of
  the similarity matrix and joins the first group, so the children's assignments still cover the
  parent's; it changes no subnet's routing.
- Candidate positions are those the subspace has not split yet (the authors' code), unless given.
- Within a position the cut minimises the total cross-group similarity (exact enumeration; the
  authors' NAS-Bench-201 code instead keeps only 2|3 cuts: `balanced=True`). Positions are ranked
  by their cut's mean cross-group similarity, so positions with 6 and 7 choices compare fairly.
"""


from efsnas.split.gmnas.decisions import GMNASSplit, SplitDecision, subspace_from_spec
from efsnas.split.gmnas.gradients import gradient_similarity, owned_parameters
from efsnas.split.gmnas.inherit import source_indices, split_each, split_supernets
from efsnas.split.gmnas.partition import best_partition, choose_split

__all__ = ["GMNASSplit", "SplitDecision", "subspace_from_spec", "gradient_similarity",
           "owned_parameters", "best_partition", "choose_split", "source_indices",
           "split_supernets", "split_each"]
