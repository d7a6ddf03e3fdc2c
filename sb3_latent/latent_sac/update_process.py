"""The critic's half of LatentSAC's gradient step in a second process: ``concurrent_update="process"``.

Two Python threads cannot share out LatentSAC's update on a CPU: its ~500 small torch calls per gradient step each
hand the GIL over. On the 2-core machine of docs/performance.md, two models training in two threads of one process
each ran 26% slower than one alone, and in two processes 9% (``benchmarks/concurrency_probe.py``). So the soft
target and the critic's update run in a child process, forked from inside ``LatentSAC.train()``, where it runs the
very loss functions that ``train()`` defines (no second copy of them), while the parent updates the temperature, the
latent policy and the generator.

The two processes share, in shared memory: the parameters of the latent policy, the action generator, the critic
and its target, the critic optimiser's state, and one minibatch. Per gradient step the parent copies the minibatch
in and sends one message. The child computes the soft target and says so (from then on the parent may update the
latent policy and the generator, which the target read), updates the critic and its target networks, and says it is
done. Neither process draws a random number the other depends on (the parent draws the child's noise), so results
are reproducible for a seed. (Moving the generator's update to the child too measured slower: the child then had the
longer side.)

The child lives as long as the tensors it shares stay the same tensors. Loading parameters or replacing the
generator replaces them, and the next ``train()`` then forks a new child from the model as it is.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from sb3_latent.errors import UserInputError

# The child's messages to the parent.
TARGETS_READ = "targets_read"  # the soft target has read the latent policy and the generator
DONE = "done"  # the critic and its target networks are updated


def check_update_process_supported(device: th.device) -> None:
    """Raise a UserInputError where ``concurrent_update="process"`` cannot run."""
    if not hasattr(os, "fork"):
        raise UserInputError(
            "concurrent_update='process' forks a child process, which this platform cannot do (no 'fork' start "
            "method: Windows). Use concurrent_update='thread' or None."
        )
    if device.type != "cpu":
        raise UserInputError(
            f"concurrent_update='process' shares out the update over two CPU cores, but this model runs on {device}. "
            "Leave concurrent_update=None on a GPU."
        )


class UpdateProcess:
    """
    A forked child process that computes the soft target and updates the critic, one gradient step per message.

    :param shared: The tensors both processes read or write (moved to shared memory here)
    :param batch: A minibatch, for the shapes and dtypes of the shared one
    :param latent_dim: Size of the latent code (the shape of the noise the parent draws for the child)
    :param ent_coef: The temperature (its shape)
    :param child_step: The child's part of one gradient step, ``child_step(batch, ent_coef, noise, critic_lr,
        gradient_step, targets_read)``: compute the soft target, call ``targets_read()``, update the critic and its
        target networks, and return the critic loss
    """

    def __init__(
        self,
        shared: list[th.Tensor],
        batch: ReplayBufferSamples,
        latent_dim: int,
        ent_coef: th.Tensor,
        child_step: Callable[..., th.Tensor],
    ):
        for tensor in shared:
            tensor.share_memory_()
        self._shared_pointers = [tensor.data_ptr() for tensor in shared]
        self._batch_layout = _layout(batch)
        # One shared tensor per field of the minibatch (None where the field is: discounts without n-step returns)
        self._batch: list[th.Tensor | None] = [None if x is None else th.empty_like(x).share_memory_() for x in batch]
        self._noise = th.empty((batch.observations.shape[0], latent_dim)).share_memory_()  # of z' ~ pi(z|s')
        self._ent_coef = th.empty_like(ent_coef).share_memory_()
        self._critic_loss = th.empty(()).share_memory_()

        # os.fork rather than multiprocessing.Process: a daemonic process (a multiprocessing.Pool worker) may not
        # start a multiprocessing child, but it may fork. The child exits when the parent closes the pipe or dies.
        self._connection, child_connection = multiprocessing.Pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child
            try:
                self._connection.close()  # the parent's end
                self._serve(child_connection, child_step)
            finally:
                os._exit(0)  # never run the parent's atexit handlers or unwind into its code
        child_connection.close()
        self._exit_code: int | None = None

    def serves(self, shared: list[th.Tensor], batch: ReplayBufferSamples) -> bool:
        """Whether this child still works on these tensors and this minibatch shape (else: fork a new one)."""
        return (
            self.is_alive()
            and _layout(batch) == self._batch_layout
            and [tensor.data_ptr() for tensor in shared] == self._shared_pointers
        )

    def is_alive(self) -> bool:
        if self._exit_code is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): it has exited, with a code unknown here
                pid, status = self.pid, 0
            if pid != 0:
                self._exit_code = os.waitstatus_to_exitcode(status)
        return self._exit_code is None

    # ------------------------------------------------------------------ the parent's side of one gradient step
    def start_step(
        self, batch: ReplayBufferSamples, ent_coef: th.Tensor, noise: th.Tensor, critic_lr: float, gradient_step: int
    ) -> None:
        """Hand one gradient step to the child: the minibatch, alpha, the noise of z' ~ pi(z|s') and the critic's lr."""
        with th.no_grad():
            for buffer, value in zip(self._batch, batch, strict=True):
                if buffer is not None and value is not None:
                    buffer.copy_(value)
            self._noise.copy_(noise)
            self._ent_coef.copy_(ent_coef)
        self._connection.send((critic_lr, gradient_step))

    def wait_targets_read(self) -> None:
        """Block until the child has computed the soft target (it read the latent policy and the generator)."""
        self._receive(TARGETS_READ)

    def finish_step(self) -> th.Tensor:
        """Block until the child has updated the critic and its target networks; return the critic loss."""
        self._receive(DONE)
        return self._critic_loss.clone()

    def _receive(self, expected: str) -> None:
        try:
            message = self._connection.recv()
        except (EOFError, ConnectionResetError):
            self.is_alive()
            raise RuntimeError(
                f"LatentSAC's critic process (concurrent_update='process', pid {self.pid}) stopped (exit code "
                f"{self._exit_code}). The next train() call forks a new one from the model as it is."
            ) from None
        if message != expected:
            raise RuntimeError(f"LatentSAC's critic process failed:\n{message}")

    def close(self) -> None:
        """Stop the child and wait for it (it also stops by itself when this process exits)."""
        if self.is_alive():
            with contextlib.suppress(OSError):
                self._connection.send(None)
            for _ in range(50):  # up to 5 s for the step in flight, if any
                if not self.is_alive():
                    break
                time.sleep(0.1)
            else:
                with contextlib.suppress(ProcessLookupError, ChildProcessError):
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                self._exit_code = -signal.SIGKILL
        self._connection.close()

    def __deepcopy__(self, memo: dict[int, Any]) -> None:
        return None  # a copied model forks its own child at its first train() call

    # ------------------------------------------------------------------ the child
    def _serve(self, connection: Any, child_step: Callable[..., th.Tensor]) -> None:
        th.set_num_threads(1)  # the parent has the other core

        def targets_read() -> None:
            connection.send(TARGETS_READ)

        while True:
            try:
                message = connection.recv()
            except (EOFError, ConnectionResetError):
                return  # the parent is gone
            if message is None:
                return
            critic_lr, gradient_step = message
            try:
                batch = ReplayBufferSamples(*self._batch)  # type: ignore[arg-type]
                critic_loss = child_step(batch, self._ent_coef, self._noise, critic_lr, gradient_step, targets_read)
                self._critic_loss.copy_(critic_loss.detach())
                connection.send(DONE)
            except BaseException:
                connection.send(traceback.format_exc())
                return


def materialized_state(optimizer: th.optim.Optimizer) -> list[th.Tensor]:
    """
    The state tensors of ``optimizer``, created first where it has not stepped yet, so that they can be shared.

    Adam creates its state (step count and moments, all zero) at its first step. One step with learning rate 0 and
    zero gradients creates it without moving a parameter; zeroing it then leaves exactly the fresh state.
    """
    if not isinstance(optimizer, (th.optim.Adam, th.optim.AdamW)):
        raise UserInputError(
            f"concurrent_update='process' shares the critic optimiser's state between two processes, which is supported "
            f"for torch.optim.Adam and AdamW; this critic uses {type(optimizer).__name__}. Use the default optimiser, "
            "or concurrent_update=None."
        )
    params = [param for group in optimizer.param_groups for param in group["params"]]
    if any(param not in optimizer.state for param in params):
        learning_rates = [group["lr"] for group in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["lr"] = 0.0
        for param in params:
            param.grad = th.zeros_like(param)
        optimizer.step()
        for group, lr in zip(optimizer.param_groups, learning_rates, strict=True):
            group["lr"] = lr
        for param in params:
            param.grad = None
        with th.no_grad():
            for state in optimizer.state.values():
                for value in state.values():
                    if isinstance(value, th.Tensor):
                        value.zero_()
    return [value for param in params for value in optimizer.state[param].values() if isinstance(value, th.Tensor)]


def _layout(batch: ReplayBufferSamples) -> list[Any]:
    return [None if x is None else (tuple(x.shape), x.dtype) for x in batch]
