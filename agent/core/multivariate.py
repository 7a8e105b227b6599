"""Several sensors judged together: a feature vector per program cycle from all channels
(CycleFeatures) and a small PCA model of healthy cycles that judges it (PcaMonitor)."""

import math
from array import array

from agent.core.compat import const
from agent.core.errors import ConfigError, InputError

MAX_FEATURES = const(12)  # features of one cycle vector (a 12 x 12 matrix at most)
# The largest feature value judged: products of two stay far inside float32's range.
FEATURE_LIMIT = 1e9
_MAX_SWEEPS = const(12)  # Jacobi sweeps; 6 to 12 features converge in 4 or 5
# Q's limit is widened by 1 + Q_SMALL_SAMPLE / cycles for a model made of few cycles
# (PcaMonitor._fit): with it a model of 30 cycles keeps about its declared false-alarm rate.
Q_SMALL_SAMPLE = 12.0
# Components kept by default: eigenvalues of the correlation matrix from this up (Jolliffe 1972).
KEEP_EIGENVALUE = 0.7
# explain(): a feature closer to its mean than this many standard deviations has direction 0.
USUAL_Z = 0.5
_SPEC_KINDS = ("duration", "mean", "peak")
_DURATION = const(0)
_MEAN = const(1)
_PEAK = const(2)

# What a verdict says about a cycle.
LEARNING = "learning"  # not judged: the model has not seen enough cycles
NORMAL = "normal"
SUSPICIOUS = "suspicious"  # over a limit in this cycle only; it does not teach the model
ALARM = "alarm"  # over a limit in `confirm` judged cycles in a row


class CycleFeatures:
    """Tracks program cycles from the phases it sees and measures declared features in each.

    specs: up to MAX_FEATURES tuples (or lists, as from JSON), each one of
      ("duration", phase): seconds spent in the phase during the cycle (all its runs),
      ("mean", channel_index, phase): the channel's mean over its valid samples in the phase,
      ("peak", channel_index, phase): the channel's largest valid sample in the phase.
    phases: the profile's phases; the first is the rest phase. channels: the channel ids
    (a channel_index indexes this list; the ids name features in explanations).

    A cycle runs from leaving the rest phase to returning to it, as CycleFeatureProcessor
    counts it. A feature of the rest phase itself measures the rest before the cycle (a
    leaking valve shows as flow while idle; before the first cycle, the rest seen since
    the features were built). A phase's duration is the time from each
    sample in it to the next sample of any channel. When a feature's phase did not run in
    a cycle (no sample of its channel in it), the cycle gives no vector: it is skipped and
    counted in `skipped`, so a short program never teaches or trips the model.
    """

    def __init__(self, specs: list, phases: list, channels: list) -> None:
        if not phases:
            raise ConfigError("cycle features need the profile's phases; got none")
        if not 2 <= len(specs) <= MAX_FEATURES:
            raise ConfigError("cycle features: got %d features; expected 2 to %d" % (len(specs), MAX_FEATURES))
        self.rest = phases[0]
        self.channels = channels
        n = len(specs)
        self.n = n
        self.kind = bytearray(n)
        self.channel = bytearray(n)
        self.phase = []
        self.specs = []
        for i in range(n):
            kind, channel, phase = _check_spec(i, specs[i], phases, channels)
            self.kind[i] = kind
            self.channel[i] = channel
            self.phase.append(phase)
            self.specs.append(tuple(specs[i]))
        self.acc = array("f", bytes(4 * n))  # ms, sum or peak per feature
        self.count = array("H", bytes(2 * n))  # samples seen (saturates), 0: did not run
        self.in_cycle = False
        self.prev_t = -1
        self.prev_phase = ""
        self.cycles = 0  # cycles ended, with a vector or skipped
        self.skipped = 0
        self._reset(False)
        self._reset(True)

    def name(self, i: int) -> str:
        """A feature's name for logs and benchmarks: 'duration@drain', 'motor_current@drain mean'."""
        phase: str = self.phase[i]
        if self.kind[i] == _DURATION:
            return "duration@" + phase
        return "%s@%s %s" % (self.channels[self.channel[i]], phase, _SPEC_KINDS[self.kind[i]])

    def _reset(self, rest: bool) -> None:
        """Clears the accumulators of the cycle's features (rest: those of the rest phase)."""
        for i in range(self.n):
            if (self.phase[i] == self.rest) == rest:
                self.acc[i] = -math.inf if self.kind[i] == _PEAK else 0.0
                self.count[i] = 0

    def sample(self, channel_index: int, t_ms: int, value: float, phase: str) -> array | None:
        """Feeds one valid sample of a channel, in time order across channels. Returns the
        cycle's feature vector (a new array('f'), in the order of specs) when this sample
        ends a cycle, else None."""
        out = None
        if self.prev_t >= 0 and t_ms > self.prev_t:
            dt = t_ms - self.prev_t
            ongoing = self.in_cycle or self.prev_phase == self.rest
            for i in range(self.n):
                if ongoing and self.kind[i] == _DURATION and self.phase[i] == self.prev_phase:
                    self.acc[i] += dt
        if phase != self.rest and not self.in_cycle:
            self.in_cycle = True
            self._reset(False)
        elif phase == self.rest and self.in_cycle:
            self.in_cycle = False
            out = self._end()
            self._reset(True)
        if self.in_cycle or phase == self.rest:
            for i in range(self.n):
                if self.phase[i] != phase:
                    continue
                kind = self.kind[i]
                if kind == _DURATION:
                    if self.count[i] < 65535:
                        self.count[i] += 1
                elif self.channel[i] == channel_index:
                    if kind == _MEAN:
                        self.acc[i] += value
                    elif value > self.acc[i]:
                        self.acc[i] = value
                    if self.count[i] < 65535:
                        self.count[i] += 1
        self.prev_t = t_ms
        self.prev_phase = phase
        return out

    def _end(self) -> array | None:
        self.cycles += 1
        vec = array("f", bytes(4 * self.n))
        for i in range(self.n):
            n = self.count[i]
            if n == 0:
                self.skipped += 1
                return None
            kind = self.kind[i]
            if kind == _DURATION:
                vec[i] = self.acc[i] / 1000.0
            elif kind == _MEAN:
                # The sum of up to 65535 samples in float32: fine for a mean to 1e-4 relative.
                vec[i] = self.acc[i] / n if n < 65535 else math.nan
            else:
                vec[i] = self.acc[i]
            if not vec[i] == vec[i]:
                self.skipped += 1  # a mean over more samples than the counter holds
                return None
        return vec


def _check_spec(i: int, spec: object, phases: list, channels: list) -> tuple:
    """(kind code, channel index, phase) of one feature spec, or ConfigError naming it."""
    where = "cycle feature %d %r: " % (i, spec)
    if not isinstance(spec, (tuple, list)) or not spec:
        raise ConfigError(where + 'expected ("duration", phase) or ("mean"|"peak", channel_index, phase)')
    kind = spec[0]
    if kind not in _SPEC_KINDS:
        raise ConfigError(where + "kind %r; expected one of %s" % (kind, ", ".join(_SPEC_KINDS)))
    code = _SPEC_KINDS.index(kind)
    want = 2 if code == _DURATION else 3
    if len(spec) != want:
        raise ConfigError(where + "%d items; expected %d for %s" % (len(spec), want, kind))
    channel = 0
    if code != _DURATION:
        channel = spec[1]
        if not isinstance(channel, int) or isinstance(channel, bool) or not 0 <= channel < len(channels):
            raise ConfigError(where + "channel index %r; expected 0 to %d" % (channel, len(channels) - 1))
    phase = spec[want - 1]
    if phase not in phases:
        raise ConfigError(where + "phase %r; expected one of %s" % (phase, ", ".join(phases)))
    return code, channel, phase


class CycleVerdict:
    """What PcaMonitor found in one cycle: status (LEARNING, NORMAL, SUSPICIOUS, ALARM), T²
    and Q with their limits (0 while learning), severity in [0, 1) (0.5 at a limit), and
    whether the cycle taught the model."""

    __slots__ = ("q", "q_limit", "severity", "status", "t2", "t2_limit", "taught")

    def __init__(self, status: str, t2: float, t2_limit: float, q: float, q_limit: float, taught: bool) -> None:
        self.status = status
        self.t2 = t2
        self.t2_limit = t2_limit
        self.q = q
        self.q_limit = q_limit
        ratio = min(self.ratio(), 1e9)  # beyond, r / (r + 1) would round to 1
        self.severity = ratio / (ratio + 1.0)
        self.taught = taught

    def ratio(self) -> float:
        """The larger of T² and Q each over its limit (0 while learning)."""
        r = 0.0
        if self.t2_limit > 0:
            r = self.t2 / self.t2_limit
        if self.q_limit > 0 and self.q / self.q_limit > r:
            r = self.q / self.q_limit
        return r


class PcaMonitor:
    """Judges cycle feature vectors against a PCA model of healthy cycles.

    A clogging drain pump shows in more than one channel: the motor current in the drain
    phase rises and the drain takes longer. The monitor standardises each cycle's features,
    projects them on the first principal components of their correlation matrix and
    measures Hotelling's T² (how far the cycle lies along the usual directions of
    variation) and Q, the squared prediction error of the rest (how far it is off the
    usual pattern: features that move together and this time did not). Each is compared
    with a limit from its distribution, so a change that breaks the usual correlations is
    found even when every feature on its own stays within its range.

    features: the vector length (2 to MAX_FEATURES).
    components: principal components kept for T² (0: those with an eigenvalue of the
      correlation matrix of KEEP_EIGENVALUE or more, Jolliffe's form of Kaiser's rule;
      at least 1, at most features - 1). A feature of its own (eigenvalue near 1) is
      thus judged by T², and Q watches the tight directions of features that move
      together, where a broken correlation shows.
    alarm_rate: the share of healthy cycles that exceed a limit; split evenly between
      T² and Q (each has alarm_rate / 2). Measured on simulated models learned from 30 or
      more cycles: about the rate without a noise floor, half of it with the default one.
    confirm: judged cycles in a row over a limit for ALARM (the first ones are SUSPICIOUS).
    learn_cycles: without a reference, cycles learned before the first is judged (at
      least features + 3: T²'s F distribution needs cycles - components >= 3).
    reference: a manufacturer's reference from healthy units, used from the first cycle:
      {"mean": [features], "sd": [features], "corr": [features * (features - 1) / 2]}
      (corr optional, the correlations above the diagonal row by row: r01, r02, .., r12,
      ..; without it the features are taken as uncorrelated). The correlations must come
      from one data set: a matrix with a negative eigenvalue is a ConfigError.
    reference_cycles: the cycles the reference counts as; the unit's own normal cycles are
      added to it one by one and outweigh it after as many.
    memory: cycles the model remembers; beyond them a new cycle has weight 1 / memory
      (exponential forgetting), so a slowly changing unit stays its own normal.
    refit_every: taught cycles between eigen-decompositions.
    noise_floor: a change of this share of a feature's mean counts as one standard
      deviation at most (durations fixed by the program vary by a sample period only).
    min_sd: the same floor in the feature's own units, for features with a mean near 0.

    Only cycles judged NORMAL (and all LEARNING cycles) teach the model: a developing fault
    does not become the new normal. Without a reference, a fault present from the first
    cycle is learned as normal: nothing tells it from the unit's own way.

    State (state_bytes()): 9 arrays of `features` float32, the covariance (packed, features *
    (features + 1) / 2) and two features x features matrices: 1.9 KB of numbers for 12
    features, 0.9 KB for 8; with the objects' headers 3.2 KB and 2.1 KB on the MicroPython
    unix port (bench/multivariate.py).
    """

    def __init__(self, features: int, components: int = 0, alarm_rate: float = 0.01, confirm: int = 2,
                 learn_cycles: int = 30, reference: dict | None = None, reference_cycles: int = 30,
                 memory: int = 200, refit_every: int = 1, noise_floor: float = 0.02,
                 min_sd: float = 0.001) -> None:  # fmt: skip
        p = features
        _need(isinstance(p, int) and 2 <= p <= MAX_FEATURES, "features", p, "2 to %d" % MAX_FEATURES)
        _need(isinstance(components, int) and 0 <= components < p, "components", components, "0 to %d" % (p - 1))
        _need(0.0001 <= alarm_rate <= 0.2, "alarm_rate", alarm_rate, "0.0001 to 0.2")
        _need(isinstance(confirm, int) and 1 <= confirm <= 10, "confirm", confirm, "1 to 10")
        _need(isinstance(learn_cycles, int) and p + 3 <= learn_cycles <= 10_000, "learn_cycles", learn_cycles,
              "%d (features + 3) to 10000" % (p + 3))  # fmt: skip
        _need(isinstance(reference_cycles, int) and p + 3 <= reference_cycles <= 10_000, "reference_cycles",
              reference_cycles, "%d (features + 3) to 10000" % (p + 3))  # fmt: skip
        _need(isinstance(memory, int) and learn_cycles <= memory <= 100_000, "memory", memory,
              "learn_cycles (%d) to 100000" % learn_cycles)  # fmt: skip
        _need(isinstance(refit_every, int) and 1 <= refit_every <= 1000, "refit_every", refit_every, "1 to 1000")
        _need(0.0 <= noise_floor <= 1.0, "noise_floor", noise_floor, "0 to 1")
        _need(0.0 <= min_sd, "min_sd", min_sd, "0 or more")
        self.p = p
        self.components = components
        self.k = components or 1  # components in use
        self.z_limit = _normal_quantile(alarm_rate / 2)
        self.confirm = confirm
        self.learn_cycles = learn_cycles
        self.memory = memory
        self.refit_every = refit_every
        self.noise_floor = noise_floor
        self.min_sd = min_sd
        self.mean = array("f", bytes(4 * p))
        self.cov = array("f", bytes(4 * (p * (p + 1) // 2)))  # packed upper triangle, population form
        self.n = 0  # cycles the model is made of: reference pseudo-cycles and taught cycles
        self.taught = 0  # the unit's own cycles that taught it
        self.judged = 0
        self.over = 0  # judged cycles over a limit in a row
        self.stale = 0  # taught cycles since the last fit
        # The fitted model: standardisation, eigenvectors (columns, by falling eigenvalue), limits.
        self.fit_mean = array("f", bytes(4 * p))
        self.fit_sd = array("f", bytes(4 * p))
        self.eigval = array("f", bytes(4 * p))
        self.eigvec = array("f", bytes(4 * p * p))
        self.work = array("f", bytes(4 * p * p))  # the matrix Jacobi diagonalises
        self.fitted = False
        self.t2_limit = 0.0
        self.q_limit = 0.0
        self.sweeps = 0  # of the last fit
        self.low_eigenvalue = 0.0  # of the last fit, before the floor
        # Of the last judged vector: standardised values and each feature's share of the verdict.
        self.z = array("f", bytes(4 * p))
        self.scores = array("f", bytes(4 * p))
        self.contrib = array("f", bytes(4 * p))
        self.change = array("f", bytes(4 * p))  # percent from the model's mean
        self.delta = array("f", bytes(4 * p))  # scratch of _learn
        self.has_reference = reference is not None
        if reference is not None:
            self._seed(reference, reference_cycles)
            self._fit()
            if self.sweeps and self.low_eigenvalue < -0.01:
                raise ConfigError("reference.corr: no correlation matrix of one data set (it has an eigenvalue "
                                  "of %.3g; expected 0 or more)" % self.low_eigenvalue)  # fmt: skip

    def _seed(self, ref: dict, cycles: int) -> None:
        p = self.p
        if not isinstance(ref, dict):
            raise ConfigError("reference: got %r; expected a dict with mean, sd and optionally corr" % (ref,))
        mean = _numbers(ref, "mean", p)
        sd = _numbers(ref, "sd", p)
        corr = _numbers(ref, "corr", p * (p - 1) // 2) if "corr" in ref else None
        for i in range(p):
            if sd[i] < 0:
                raise ConfigError("reference.sd[%d]: got %r; expected 0 or more" % (i, sd[i]))
        if corr is not None:
            for i in range(len(corr)):
                if not -1.0 <= corr[i] <= 1.0:
                    raise ConfigError("reference.corr[%d]: got %r; expected -1 to 1" % (i, corr[i]))
        unknown = [key for key in ref if key not in ("mean", "sd", "corr")]
        if unknown:
            raise ConfigError("reference: unknown key %r; expected mean, sd, corr" % (unknown[0],))
        # The reference as `cycles` cycles already seen, in population form like the learned state.
        scale = (cycles - 1) / cycles
        c = 0
        at = 0
        for i in range(p):
            self.mean[i] = mean[i]
            for j in range(i, p):
                r = 1.0 if i == j else (corr[c] if corr is not None else 0.0)
                if i != j:
                    c += 1
                self.cov[at] = r * sd[i] * sd[j] * scale
                at += 1
        self.n = cycles

    def state_bytes(self) -> int:
        """Bytes of the model's numbers (float32); the runtime's object headers come on top."""
        p = self.p
        return 4 * (9 * p + p * (p + 1) // 2 + 2 * p * p)

    # -- judging --------------------------------------------------------------
    def judge(self, vector: object) -> CycleVerdict:
        """Judges one cycle's feature vector (p numbers) and, unless it is over a limit,
        learns it. Returns a new CycleVerdict; the contributions of this vector are in
        `contrib` and explain() until the next call. InputError for a vector of the wrong
        length or with a value that is not a number within FEATURE_LIMIT (NaN, infinite);
        the model is unchanged then."""
        x = vector
        p = self.p
        if len(x) != p:  # type: ignore[arg-type]
            raise InputError("cycle vector of %d values; expected %d" % (len(x), p))  # type: ignore[arg-type]
        for i in range(p):
            v = x[i]  # type: ignore[index]
            if not -FEATURE_LIMIT <= v <= FEATURE_LIMIT:
                raise InputError("cycle vector[%d] is %r; expected a number within +-%g" % (i, v, FEATURE_LIMIT))
        if not self.fitted:
            self._learn(x)
            return CycleVerdict(LEARNING, 0.0, 0.0, 0.0, 0.0, True)
        t2, q = self._statistics(x)
        self.judged += 1
        over = t2 > self.t2_limit or q > self.q_limit
        if over:
            self.over += 1
            status = ALARM if self.over >= self.confirm else SUSPICIOUS
        else:
            self.over = 0
            status = NORMAL
            self._learn(x)
        return CycleVerdict(status, t2, self.t2_limit, q, self.q_limit, not over)

    def _statistics(self, x: object) -> tuple:
        """(T², Q) of x, with z, scores and each feature's contribution left for explain()."""
        p = self.p
        k = self.k
        z = self.z
        sq = 0.0
        for i in range(p):
            d = x[i] - self.fit_mean[i]  # type: ignore[index]
            z[i] = d / self.fit_sd[i]
            m = self.fit_mean[i]
            self.change[i] = d / abs(m) * 100.0 if m else 0.0
            sq += z[i] * z[i]
        t2 = 0.0
        explained = 0.0
        for j in range(k):
            t = 0.0
            for i in range(p):
                t += self.eigvec[i * p + j] * z[i]
            self.scores[j] = t
            explained += t * t
            t2 += t * t / self.eigval[j]
        q = sq - explained
        if q < 0.0:
            q = 0.0  # rounding: z lies (almost) in the model's plane
        # Each feature's part of T² (z_i times its row of P Λ⁻¹ t: they sum to T²) and of Q
        # (its squared residual), each over its limit: what drove the verdict.
        total = 0.0
        for i in range(p):
            fit = 0.0
            part = 0.0
            for j in range(k):
                fit += self.eigvec[i * p + j] * self.scores[j]
                part += self.eigvec[i * p + j] * self.scores[j] / self.eigval[j]
            e = z[i] - fit
            c = max(0.0, z[i] * part) / self.t2_limit + e * e / self.q_limit
            self.contrib[i] = c
            total += c
        if total > 0.0:
            for i in range(p):
                self.contrib[i] /= total
        return t2, q

    def explain(self, n: int = 3) -> list:
        """The features that drove the last judged vector, largest share first: up to n
        tuples (feature index, share of the verdict in [0, 1], direction, change in percent
        of the model's mean). direction is +1 (up) or -1 (down), or 0 for a feature within
        USUAL_Z standard deviations of its mean: it drove the verdict by not moving with
        the features it usually follows."""
        order = sorted(range(self.p), key=lambda i: -self.contrib[i])
        out = []
        for i in order[:n]:
            z = self.z[i]
            out.append((i, self.contrib[i], 1 if z >= USUAL_Z else -1 if z <= -USUAL_Z else 0, self.change[i]))
        return out

    # -- learning -------------------------------------------------------------
    def _learn(self, x: object) -> None:
        """One cycle into the running mean and covariance (Welford, exponential after `memory`)."""
        p = self.p
        self.n += 1
        self.taught += 1
        a = 1.0 / self.n
        if a < 1.0 / self.memory:
            a = 1.0 / self.memory
        d = self.delta
        for i in range(p):
            d[i] = x[i] - self.mean[i]  # type: ignore[index]
            self.mean[i] += a * d[i]
        at = 0
        for i in range(p):
            for j in range(i, p):
                self.cov[at] = (1.0 - a) * (self.cov[at] + a * d[i] * d[j])
                at += 1
        self.stale += 1
        if self.fitted and self.stale >= self.refit_every:
            self._fit()
        elif not self.fitted and not self.has_reference and self.taught >= self.learn_cycles:
            self._fit()

    def _fit(self) -> None:
        """Standardises the covariance to a correlation matrix, diagonalises it, sets the limits."""
        p = self.p
        n = self.n
        bessel = n / (n - 1) if n > 1 else 1.0
        for i in range(p):
            var = self.cov[_packed(p, i, i)] * bessel
            floor = max(self.noise_floor * abs(self.mean[i]), self.min_sd)
            self.fit_mean[i] = self.mean[i]
            self.fit_sd[i] = math.sqrt(var + floor * floor) or 1.0
        a = self.work
        for i in range(p):
            for j in range(i, p):
                # The floor counts as noise of each feature's own: 1 on the diagonal.
                r = 1.0 if i == j else self.cov[_packed(p, i, j)] * bessel / (self.fit_sd[i] * self.fit_sd[j])
                a[i * p + j] = r
                a[j * p + i] = r
        self.sweeps = jacobi(a, self.eigvec, p)
        for i in range(p):
            self.eigval[i] = a[i * p + i]
        _sort_eigen(self.eigval, self.eigvec, p)
        self.low_eigenvalue = self.eigval[p - 1]
        for i in range(p):
            # An eigenvalue at 0 (features that moved in lockstep) would divide by 0.
            if self.eigval[i] < 1e-4:
                self.eigval[i] = 1e-4
        k = self.components
        if not k:
            k = 0
            while k < p - 1 and self.eigval[k] >= KEEP_EIGENVALUE:
                k += 1
            k = max(k, 1)
        self.k = k
        m = min(n, self.memory)
        self.t2_limit = t2_limit(k, m, self.z_limit)
        theta1 = 0.0
        theta2 = 0.0
        for j in range(k, p):
            theta1 += self.eigval[j]
            theta2 += self.eigval[j] * self.eigval[j]
        # Eigenvalues of a correlation estimated from m cycles understate the residual
        # directions' variance, so a new cycle's Q runs larger than Box's limit allows: by a
        # factor near 1 + Q_SMALL_SAMPLE / m (measured on simulated factor models, p 4 to 12).
        self.q_limit = q_limit(theta1, theta2, self.z_limit) * (1.0 + Q_SMALL_SAMPLE / m)
        self.fitted = True
        self.stale = 0


def _need(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError("PcaMonitor %s: got %r; expected %s" % (name, value, expected))


def _numbers(ref: dict, key: str, n: int) -> list:
    values = ref.get(key)
    if not isinstance(values, (list, tuple, array)) or len(values) != n:
        raise ConfigError("reference.%s: got %r; expected a list of %d numbers" % (key, values, n))
    out = []
    for i in range(n):
        v = values[i]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not -math.inf < v < math.inf:
            raise ConfigError("reference.%s[%d]: got %r; expected a finite number" % (key, i, v))
        out.append(float(v))
    return out


def _packed(p: int, i: int, j: int) -> int:
    """Index of (i, j), i <= j, in a packed upper triangle of a p x p matrix."""
    return i * p - i * (i - 1) // 2 + j - i


def jacobi(a: array, v: array, p: int) -> int:
    """Diagonalises the symmetric p x p matrix a (row-major, in place) by cyclic Jacobi
    rotations; v gets the eigenvectors as columns. Returns the sweeps it took. The
    eigenvalues are left on a's diagonal, unsorted."""
    for i in range(p * p):
        v[i] = 0.0
    for i in range(p):
        v[i * p + i] = 1.0
    for sweep in range(_MAX_SWEEPS):
        off = 0.0
        diag = 0.0
        for i in range(p):
            diag += a[i * p + i] * a[i * p + i]
            for j in range(i + 1, p):
                off += a[i * p + j] * a[i * p + j]
        if off <= 1e-12 * diag or off < 1e-30:
            return sweep
        for r in range(p - 1):
            for c in range(r + 1, p):
                arc = a[r * p + c]
                if abs(arc) < 1e-20:
                    continue
                theta = (a[c * p + c] - a[r * p + r]) / (2.0 * arc)
                t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
                if theta < 0:
                    t = -t
                cs = 1.0 / math.sqrt(t * t + 1.0)
                sn = t * cs
                for i in range(p):
                    air = a[i * p + r]
                    aic = a[i * p + c]
                    a[i * p + r] = cs * air - sn * aic
                    a[i * p + c] = sn * air + cs * aic
                for i in range(p):
                    ari = a[r * p + i]
                    aci = a[c * p + i]
                    a[r * p + i] = cs * ari - sn * aci
                    a[c * p + i] = sn * ari + cs * aci
                for i in range(p):
                    vir = v[i * p + r]
                    vic = v[i * p + c]
                    v[i * p + r] = cs * vir - sn * vic
                    v[i * p + c] = sn * vir + cs * vic
    return _MAX_SWEEPS


def _sort_eigen(val: array, vec: array, p: int) -> None:
    """Orders eigenpairs by falling eigenvalue (selection sort; p <= 12)."""
    for j in range(p - 1):
        best = j
        for i in range(j + 1, p):
            if val[i] > val[best]:
                best = i
        if best != j:
            val[j], val[best] = val[best], val[j]
            for i in range(p):
                vec[i * p + j], vec[i * p + best] = vec[i * p + best], vec[i * p + j]


def _normal_quantile(tail: float) -> float:
    """z with P(Z > z) = tail, 0 < tail <= 0.5 (Abramowitz and Stegun 26.2.23; error < 5e-4)."""
    t = math.sqrt(-2.0 * math.log(tail))
    return t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t**3)


def chi2_quantile(dof: float, z: float) -> float:
    """The chi-square quantile with dof degrees of freedom at normal quantile z (Wilson and
    Hilferty's cube-root approximation; dof may be fractional)."""
    c = 2.0 / (9.0 * dof)
    base = 1.0 - c + z * math.sqrt(c)
    return dof * base * base * base if base > 0 else 0.0


def f_quantile(d1: int, d2: int, z: float) -> float:
    """The F(d1, d2) quantile at normal quantile z (Paulson's approximation, Abramowitz and
    Stegun 26.6.15 solved for F); d2 >= 3."""
    a = 2.0 / (9.0 * d1)
    b = 2.0 / (9.0 * d2)
    den = (1.0 - b) * (1.0 - b) - z * z * b
    if den <= 0:
        return math.inf
    root = math.sqrt(max(0.0, a * (1.0 - b) ** 2 + b * (1.0 - a) ** 2 - z * z * a * b))
    x = ((1.0 - a) * (1.0 - b) + z * root) / den
    return x * x * x


def t2_limit(k: int, m: int, z: float) -> float:
    """The limit of Hotelling's T² for a new cycle, k components, the model made of m
    cycles: k (m - 1)(m + 1) / (m (m - k)) F(k, m - k) (Tracy, Young and Mason)."""
    if m - k < 3:
        return math.inf
    return k * (m - 1) * (m + 1) / (m * (m - k)) * f_quantile(k, m - k, z)


def q_limit(theta1: float, theta2: float, z: float) -> float:
    """The limit of Q from the residual eigenvalues' sums theta1 (of λ) and theta2 (of λ²):
    Box's approximation, Q ~ g chi2(h) with g = theta2 / theta1, h = theta1² / theta2."""
    if theta1 <= 0.0 or theta2 <= 0.0:
        return 1e-6
    g = theta2 / theta1
    return g * chi2_quantile(theta1 * theta1 / theta2, z)
