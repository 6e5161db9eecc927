"""``python -m cropmeta``: the command line as a module, which is how ``torchrun`` starts it.

``torchrun --nproc_per_node 2 -m cropmeta meta-train ...`` runs meta-training in two processes
(see :mod:`cropmeta.learners.distributed`).
"""

from cropmeta.cli.main import app

if __name__ == "__main__":
    app(prog_name="cropmeta")
