#!/usr/bin/env python3
"""Compare two op-level chrome traces (misfm's profileOps, PyTorch's legacy profiler) by self time.

  python3 scripts/dev/op-profile-compare.py MISFM_TRACE TORCH_TRACE [--top 40] [--calls OP]

Self time = an event's duration less the events nested in it on the same thread. --calls OP lists
that op's calls in order (durations in ms), which finds the one slow call among many.
"""
import argparse
import collections
import json


def load(path):
    return [e for e in json.load(open(path)) if e.get('ph') == 'X']


def self_times(events):
    by_tid = collections.defaultdict(list)
    for e in events:
        by_tid[e['tid']].append(e)
    total, count = collections.Counter(), collections.Counter()
    for es in by_tid.values():
        es.sort(key=lambda e: (e['ts'], -e['dur']))
        stack = []
        for e in es:
            e['self'] = e['dur']
            while stack and stack[-1]['ts'] + stack[-1]['dur'] <= e['ts']:
                stack.pop()
            if stack:
                stack[-1]['self'] -= e['dur']
            stack.append(e)
        for e in es:
            total[e['name']] += e['self']
            count[e['name']] += 1
    return total, count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('a')
    ap.add_argument('b')
    ap.add_argument('--top', type=int, default=40)
    ap.add_argument('--calls')
    o = ap.parse_args()
    ea, eb = load(o.a), load(o.b)
    if o.calls:
        for name, es in (('a', ea), ('b', eb)):
            print(name, [round(e['dur'] / 1000) for e in sorted(es, key=lambda e: e['ts']) if e['name'] == o.calls])
        return
    (ta, ca), (tb, cb) = self_times(ea), self_times(eb)
    print(f"{'op':55s} {'a ms':>9s} {'calls':>7s} {'b ms':>9s} {'calls':>7s}")
    for n in sorted(set(ta) | set(tb), key=lambda n: -max(ta[n], tb[n]))[:o.top]:
        print(f"{n[:55]:55s} {ta[n] / 1000:9.1f} {ca[n]:7d} {tb[n] / 1000:9.1f} {cb[n]:7d}")
    print(f"{'total self time':55s} {sum(ta.values()) / 1000:9.1f} {'':7s} {sum(tb.values()) / 1000:9.1f}")


if __name__ == '__main__':
    main()
