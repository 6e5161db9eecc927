"""Honest baselines, each fitted on the very support set a meta-learner adapts on: from
scratch, a random forest (:mod:`.run`), transfer from the source classifier pre-trained during
meta-training (:mod:`.transfer`), and what a practitioner with the sources' labels fits first —
the source samples plus the shots (:mod:`.pooled`)."""
