"""Can the estimates and the gate be trusted? Off-policy evaluation checked against truth.

For every domain, validation scenario and seed, the whole nightly path runs on data whose
ground truth is known:

1. **Logs.** Behaviour-policy rollouts of the domain's simulator
   (:func:`offline_rl.simulator.rollouts.behavior_rollouts`): observations, actions, behaviour
   probabilities, rewards and episode ends, exactly what the transitions of those episodes
   would hold. A training set and a separate held-out evaluation set are drawn.
2. **Candidates.** A few cheap trained candidates
   (:func:`offline_rl.algos.training.train_candidate`, few gradient steps, their greedy
   policies honouring the domain's action mask) plus deliberately constructed ones:

   * ``worse``: the first trained Q-learner's greedy policy, except that in a fixed
     pseudo-random share of states (a hash of the observation) it takes the action that
     learner values least. It looks like a trained candidate and is usually truly worse
     than the behaviour policy: the gate must not promote it.
   * ``rare``: always the allowed action the training logs contain least often; its value
     rests on a handful of logged decisions.
   * ``near_bar_above`` / ``near_bar_below``: blends of the truly best and the truly worst
     of those (the best's action in a share of states chosen by a hash of the observation),
     the share bisected with simulator truth (every rollout, common random numbers) until
     the blend is worth between the bar and 1% of the incumbent's value above / below it:
     the decisions a margin exists for, where a false promotion is easiest.
   * ``early_late``: good early, bad late. The truly best policy so far until a cut in the
     domain's progress feature (``Domain.progress_feature``: the page, visit, hour or day of
     the episode as a fraction; the states of the step the cut falls in are split by a hash
     of the observation), the first Q-learner's least-valued action after it, the cut
     bisected with simulator truth until the policy is worth between the bar and 1% of the
     incumbent's value below it. Its late steps are where a policy that leaves the logs has
     cumulative importance weights near zero, so doubly robust values them with FQE alone.
   * ``fqe_greedy``: tuned to please the evaluator. The greedy policy of the Q-function the
     evaluation itself fits for the first Q-learner on the held-out episodes
     (:func:`offline_rl.ope.evaluate.fitted_q_function`: same settings, seed and
     mini-batches): one step of policy improvement on FQE, which picks the actions whose
     values FQE over-estimates. Its truth falls where it falls; the figure is how much its
     estimate flatters it and how often it passes when it is truly below the bar.
   * ``spibb``: a candidate that stays where the logs are (Pi_b-SPIBB-style,
     :class:`~offline_rl.experiments.validation.policies.SpibbPolicy`): actions the
     behaviour-cloning candidate gives less than ``SPIBB_THRESHOLD`` (5%) keep that
     probability, the rest goes to the first Q-learner's best action among the others. A
     stochastic policy, valued exactly (``StochasticTarget``) and sampled in the truth
     rollouts; the run records the share of probability left with the logging policy's
     estimate (``spibb.fallback_share``).
   * ``mixture``: double DQN's greedy policy (``MIXTURE_BASE``; the first Q-learner without
     it) mixed with the logging policy
     (:class:`~offline_rl.experiments.validation.policies.MixturePolicy`): with probability
     ``MIXTURE_SHARE`` (50%) an action drawn from the behaviour model, else the greedy one.
     It stays near the logs and earns part of the gain; stochastic, valued exactly like
     ``spibb``. Whether such a candidate passes where the greedy ones are missed is what it
     is there to show.

3. **Estimates and decision.** Every candidate is evaluated on the held-out episodes with
   :func:`offline_rl.ope.evaluate.evaluate_policy`. The run's decision is the gate's
   (:func:`offline_rl.ope.gate.decide`) over the trained candidates alone, the family the
   nightly job tests (Holm's correction over its candidates, not over the constructed ones
   too); each constructed candidate is judged in a night of its own that adds it to the
   trained ones (:func:`~offline_rl.experiments.validation.results.decide_night`). The gate
   compares them with the incumbent: the behaviour
   policy, valued on-policy from the same held-out logs, or (scenario ``promoted_incumbent``)
   an earlier promoted policy trained on an earlier log and valued off-policy, as the nightly
   job values the policy in production. Training and evaluation use the nightly job's
   settings (``NIGHTLY_TRAIN_STEPS``, ``OPEConfig``'s defaults).
4. **Truth.** :func:`offline_rl.simulator.base.true_value` of the behaviour policy and of
   every candidate (seeded rollouts, common random numbers across policies).

Figures, per domain and estimator (``summarise``):

* ``median_relative_error``: median over (run, candidate) of ``|estimate - truth| / |truth|``;
* ``rank_correlation``: Spearman correlation between the estimates and the true values of
  one run's candidates, averaged over runs (runs with fewer than three finite estimates or
  candidates of equal truth are left out);
* ``interval_coverage``: share of (run, candidate) whose interval contains the truth;
* ``pairwise_accuracy``: over the pairs of one run's candidates whose true values differ by
  more than the gate's margin (``margin * |truth(behaviour)|``), the share the estimates put
  in the true order. Rank correlation also scores pairs no estimator can order (two
  candidates a fraction of a percent apart, as behaviour cloning and CQL often are); the
  gate only ever has to separate values a margin apart, and this figure counts only those
  (``distinguishable_pairs`` of them);
* ``selection_regret``: how much truth is lost by picking the candidate with the highest
  estimate instead of the truly best candidate, ``(max truth - truth(argmax estimate)) /
  |truth(behaviour)|``, averaged over runs (off-policy selection's regret at 1);

and for the gate (one decision per run, among the trained candidates), with
``bar = truth(incumbent) * (1 + margin)`` (``margin * |truth|`` for a negative value):

* ``false_promotion_rate``: promotions of a candidate whose true value does not exceed the
  bar, over all decisions;
* ``missed_improvement_rate``: decisions that kept the incumbent although some candidate's
  true value exceeded the bar, over the decisions where such a candidate existed; and
  ``missed_beyond_zone_rate``, the same above ``bar + indifference * |truth(incumbent)|``
  (just above the bar, keeping the incumbent costs less than the zone);
* ``false_promotion_upper`` / ``missed_beyond_zone_upper``: exact one-sided 95%
  (Clopper-Pearson) upper bounds of those rates, what a claim from few decisions may say;
* ``power_curve``: the share of decisions that promoted, per bin of the best candidate's
  true gain over the incumbent, with exact 95% intervals;
* ``decision_regret``: truth lost by the decision against the best the gate could have done
  (promote the truly best candidate if it beats the behaviour policy, else keep it),
  ``(max(truth(behaviour), max truth) - truth(outcome)) / |truth(behaviour)|``, averaged.

and per constructed candidate (``constructed``): among the runs where it is truly at or below
the bar, how often it passed the gate's test in the night that added it (``false_passes``,
exact upper bound) and how often that night promoted it, and the mean signed relative error
of its headline estimate.

The overall figures pool every domain; their estimator figures are those of each run's gate
headline (``run_headline``: ``replay`` for inventory, ``dr`` elsewhere; ``headline`` in the
result maps each domain to it). The same figures per validation scenario (``per_scenario``,
headline estimators and gate) show how the estimates and the gate fare with little data or
a near-deterministic logging policy, under which a candidate that leaves the logged actions
is valued mostly by the model's extrapolation.
``offline-rl validate-ope`` runs it and prints the tables. The modules: ``scenarios`` (which
logs and incumbent), ``policies`` (the constructed candidates), ``run`` (one run and the
driver), ``figures`` (the statistics) and ``results`` (stored results, re-deciding, tables).
"""
