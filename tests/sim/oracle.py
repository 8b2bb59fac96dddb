"""A slow, step-by-step reference of one decode or mixed instance: the engine's specification.

The engine jumps over many decode steps at once (epochs, closed forms, cut short at arrivals).
This module does none of that: it advances one engine step at a time, keeps every sequence as a
plain object with its KV length and the tokens it still owes, asks the cost model for the time of
each step from the full list of KV lengths, and writes down every token's instant. The rules are
the serving engine's, stated once, in the order they apply at every step boundary:

1. **retire**: sequences that emitted their last token leave (a fully reserving instance frees
   their reservation);
2. **preempt** (on-demand KV only): while the next step's KV blocks (``ceil(kv/B)`` per running
   sequence, plus blocks held by prompts partly computed) exceed capacity, the most recently
   joined sequence is evicted: ``recompute`` drops its KV (a decode instance prefills prompt plus
   generated tokens again when it resumes; a mixed instance puts it back at the head of its
   prefill line), ``swap`` copies it to host memory (``kv_bytes(kv - 1) / host bandwidth``) and
   back when it resumes;
3. **admit**: waiting requests join first come first served while a sequence slot is free and
   their KV fits (on demand: ``ceil(kv/B)`` blocks besides those in use; full reservation:
   ``ceil((prompt + output)/B)`` blocks besides the other reservations);
4. a stall (swap, recompute) passes with no token out, then the boundary is visited again;
5. otherwise one step runs. A decode instance's step emits one token for every running sequence.
   A mixed instance first plans prompt work: chunked prefill fills the step's token budget, after
   one token per running decode, with prompt chunks (FCFS, each within free KV and the sequence
   limit; the running decodes emit a token in that step); prefill-first takes whole prompts and
   the running decodes wait. A prompt whose last chunk is computed emits its first token at the
   step's end and decodes from the next step on. A mixed instance with no plan and nothing
   running while prompts wait restarts the youngest partly computed prompt.

A request that arrives during a step is considered at the boundary that ends it (at the
boundary's instant, or earlier). Times of steps are sums of the cost model's step times, added
one after the other.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from infersim.cost import StepBatch, check_fits, kv_cache_bytes, prefill_time, step_time


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class Seq:
    rid: int
    kv: int  # tokens the next step attends to (the fed-back token included)
    left: int  # tokens still to emit


@dataclass
class Outcome:
    """What the reference says happened to each request."""

    tokens: dict[int, list[float]] = field(default_factory=dict)  # every token instant
    decode_start_at: dict[int, float] = field(default_factory=dict)
    prefill_start_at: dict[int, float] = field(default_factory=dict)
    preemptions: dict[int, int] = field(default_factory=dict)
    rejected: set[int] = field(default_factory=set)
    busy_s: float = 0.0


class Instance:
    """One instance of ``pool`` serving ``prompt``/``output`` lengths of requests that arrive
    (for a decode pool: whose KV arrives) at ``arrivals`` (instant, request) pairs."""

    def __init__(self, pool, prompt, output, first_token_at=None) -> None:
        self.pool, self.dep = pool, pool.deployment
        self.prompt, self.output = list(prompt), list(output)
        self.B = pool.block_size
        self.cap = int(check_fits(self.dep, pool.memory_fraction).kv_capacity_tokens) // self.B
        self.max_seqs = min(pool.max_batch_size, pool.max_batch_tokens)
        self.full = pool.kv_reservation == "full"
        self.host_bw = pool.host_bandwidth * self.dep.chips
        self.running: list[Seq] = []  # in join order
        self.waiting: deque[int] = deque()
        self.resume: dict[int, int] = {}  # preempted request -> KV length to resume with
        self.reserved = 0
        self.out = Outcome()
        if first_token_at is not None:  # decode: the first token came out of prefill
            for rid, at in first_token_at.items():
                self.out.tokens[rid] = [at]
        # mixed
        self.queue: deque[int] = deque()  # prefill line
        self.progress: dict[int, int] = {}
        self.prefill_blocks = 0
        self.started: set[int] = set()

    # -- shared rules ---------------------------------------------------------------------------

    def reservation(self, rid: int) -> int:
        return ceil_div(self.prompt[rid] + self.output[rid], self.B)

    def blocks(self) -> int:
        return sum(ceil_div(s.kv, self.B) for s in self.running) + self.prefill_blocks

    def retire(self) -> None:
        for s in [s for s in self.running if s.left == 0]:
            self.running.remove(s)
            if self.full:
                self.reserved -= self.reservation(s.rid)

    def swap_s(self, kv: int) -> float:
        return float(kv_cache_bytes(self.dep, kv - 1)) / self.host_bw

    def preempt(self, mixed: bool) -> float:
        stall = 0.0
        while self.running and self.blocks() > self.cap:
            s = self.running.pop()
            self.resume[s.rid] = s.kv
            self.out.preemptions[s.rid] = self.out.preemptions.get(s.rid, 0) + 1
            if self.pool.preemption == "swap":
                stall += self.swap_s(s.kv)
                self.waiting.appendleft(s.rid)
            elif mixed:
                self.queue.appendleft(s.rid)
            else:
                self.waiting.appendleft(s.rid)
        return stall

    def admit(self, now: float) -> float:
        stall = 0.0
        used = self.blocks()
        while self.waiting and len(self.running) < self.max_seqs:
            rid = self.waiting[0]
            resumed = self.resume.get(rid)
            kv = self.prompt[rid] + 1 if resumed is None else resumed
            need = ceil_div(kv, self.B)
            if self.full:
                if self.reserved + self.reservation(rid) > self.cap:
                    break
                self.reserved += self.reservation(rid)
            elif used + need > self.cap:
                break
            used += need
            self.waiting.popleft()
            self.running.append(Seq(rid, kv, self.output[rid] - (kv - self.prompt[rid])))
            if resumed is None:
                self.out.decode_start_at[rid] = now
            else:
                del self.resume[rid]
                stall += (self.swap_s(kv) if self.pool.preemption == "swap"
                          else float(prefill_time(self.dep, [kv])))
        return stall

    def emit(self, at: float) -> None:
        for s in self.running:
            self.out.tokens[s.rid].append(at)
            s.kv += 1
            s.left -= 1

    def decode_step_s(self) -> float:
        return float(step_time(self.dep, StepBatch(
            decode_kv_lens=tuple(s.kv for s in self.running))).time_s)

    # -- a decode instance ----------------------------------------------------------------------

    def run_decode(self, arrivals: list[tuple[float, int]]) -> Outcome:
        pending = deque(sorted(arrivals))
        now = 0.0
        while True:
            while pending and pending[0][0] <= now:
                self.waiting.append(pending.popleft()[1])
            self.retire()
            stall = self.preempt(mixed=False)
            stall += self.admit(now)
            if stall > 0:
                self.out.busy_s += stall
                now += stall
                continue
            if not self.running:
                if not pending:
                    return self.out
                now = pending[0][0]
                continue
            span = self.decode_step_s()
            self.out.busy_s += span
            now += span
            self.emit(now)

    # -- a mixed instance -----------------------------------------------------------------------

    def target(self, rid: int) -> int:
        return self.resume.get(rid, self.prompt[rid])

    def reserve_fits(self, rid: int, planned: int) -> int | None:
        if not self.full or rid in self.started:
            return 0
        reserve = self.reservation(rid)
        return reserve if self.reserved + planned + reserve <= self.cap else None

    def plan_chunks(self) -> list[tuple[int, int, int, int]]:
        n = len(self.running)
        budget = self.pool.max_batch_tokens - n
        seqs = self.pool.max_batch_size - n
        free = self.cap - self.blocks()
        plan, reserving = [], 0
        for rid in self.queue:
            if budget <= 0 or seqs <= 0:
                break
            reserve = self.reserve_fits(rid, reserving)
            if reserve is None:
                break
            done = self.progress.get(rid, 0)
            chunk = min(self.target(rid) - done, budget)
            extra = ceil_div(done + chunk, self.B) - ceil_div(done, self.B)
            if extra > free:
                break
            plan.append((rid, chunk, done, extra))
            free -= extra
            reserving += reserve
            budget -= chunk
            seqs -= 1
        return plan

    def plan_prompts(self) -> list[tuple[int, int, int, int]]:
        seqs = self.pool.max_batch_size - len(self.running)
        free = self.cap - self.blocks()
        plan, tokens, reserving = [], 0, 0
        for rid in self.queue:
            target = self.target(rid)
            need = ceil_div(target, self.B)
            reserve = self.reserve_fits(rid, reserving)
            if reserve is None or len(plan) >= seqs or need > free or (
                    plan and tokens + target > self.pool.max_batch_tokens):
                break
            plan.append((rid, target, 0, need))
            free -= need
            reserving += reserve
            tokens += target
        return plan

    def prompt_step_s(self, plan) -> float:
        chunks = tuple(chunk for _, chunk, _, _ in plan)
        before = tuple(done for _, _, done, _ in plan)
        budget = self.pool.max_batch_tokens
        if self.pool.chunked_prefill:
            return float(step_time(self.dep, StepBatch(
                prefill_new_tokens=chunks, prefill_context=before,
                decode_kv_lens=tuple(s.kv for s in self.running))).time_s)
        if len(plan) == 1 and chunks[0] > budget:  # a prompt over the budget: chunk by chunk
            total, done = 0.0, 0
            while done < chunks[0]:
                chunk = min(budget, chunks[0] - done)
                total += float(step_time(self.dep, StepBatch(
                    prefill_new_tokens=(chunk,), prefill_context=(done,))).time_s)
                done += chunk
            return total
        return float(prefill_time(self.dep, list(chunks)))

    def run_mixed(self, arrivals: list[tuple[float, int]]) -> Outcome:
        pending = deque(sorted(arrivals))
        now = 0.0
        while True:
            while pending and pending[0][0] <= now:
                rid = pending.popleft()[1]
                # what the request's KV grows to (prompt + output - 1 tokens; reserving in full,
                # prompt + output) can never fit here
                if self.prompt[rid] + self.output[rid] - (0 if self.full else 1) > self.cap * self.B:
                    self.out.rejected.add(rid)
                else:
                    self.queue.append(rid)
            self.retire()
            stall = self.preempt(mixed=True)
            stall += self.admit(now)
            if stall > 0:
                self.out.busy_s += stall
                now += stall
                continue
            plan = self.plan_chunks() if self.pool.chunked_prefill else self.plan_prompts()
            if plan:
                now = self.prompt_step(now, plan)
            elif self.running:
                span = self.decode_step_s()
                self.out.busy_s += span
                now += span
                self.emit(now)
            elif self.queue:
                self.restart_youngest_prompt()
            elif pending:
                now = max(now, pending[0][0])
            else:
                return self.out

    def prompt_step(self, now: float, plan) -> float:
        span = self.prompt_step_s(plan)
        for rid, chunk, done, extra in plan:
            if rid not in self.started:
                self.started.add(rid)
                self.out.prefill_start_at[rid] = now
                if self.full:
                    self.reserved += self.reservation(rid)
            self.prefill_blocks += extra
            self.progress[rid] = done + chunk
        end = now + span
        self.out.busy_s += span
        if self.pool.chunked_prefill:
            self.emit(end)  # the running decodes' token of this step
        for rid, _, _, _ in plan:
            target = self.target(rid)
            if self.progress[rid] < target:
                continue
            self.queue.remove(rid)
            del self.progress[rid]
            self.prefill_blocks -= ceil_div(target, self.B)
            if rid in self.resume:  # recomputed: decodes on, no token from this step
                kv = self.resume.pop(rid)
                self.running.append(Seq(rid, kv, self.output[rid] - (kv - self.prompt[rid])))
                continue
            self.out.tokens[rid] = [end]
            if self.output[rid] == 1:
                if self.full:
                    self.reserved -= self.reservation(rid)
                continue
            self.out.decode_start_at[rid] = end
            self.running.append(Seq(rid, self.prompt[rid] + 1, self.output[rid] - 1))
        return end

    def restart_youngest_prompt(self) -> None:
        for rid in reversed(self.queue):
            done = self.progress.get(rid, 0)
            if done and rid != self.queue[0]:
                del self.progress[rid]
                self.prefill_blocks -= ceil_div(done, self.B)
                self.out.preemptions[rid] = self.out.preemptions.get(rid, 0) + 1
                return
        raise RuntimeError("prefill cannot progress with the memory it has")
