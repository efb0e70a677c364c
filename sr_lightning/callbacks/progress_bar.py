"""Rich's progress bar, titled by the epochs a run bounded by steps will take."""

from __future__ import annotations

import math

from lightning.pytorch.callbacks import RichProgressBar


class StepsProgressBar(RichProgressBar):
    """Lightning's :class:`RichProgressBar`; its title counts epochs up to the last one the run
    reaches (``Epoch 3/17`` for ``trainer.max_steps`` of 18 epochs), where Lightning shows
    ``Epoch 3/-2`` for a run bounded by steps (``max_epochs=-1``)."""

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        per_epoch = trainer.num_training_batches
        if (trainer.max_epochs is None or trainer.max_epochs < 1) and trainer.max_steps > 0 \
                and 0 < per_epoch < math.inf:
            text = f"Epoch {current_epoch}/{math.ceil(trainer.max_steps / per_epoch) - 1}"
            return f"{text:{len(self.validation_description)}}" if len(self.validation_description) > len(text) \
                else text
        return super()._get_train_description(current_epoch)
