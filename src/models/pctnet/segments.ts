/**
 * PCT-Net as recomputation segments (see ../recompute.ts): the stem, each PCT block with its
 * down/up-sampling, and the prediction head (which runs with autograd on the first pass).
 */
import type { Tensor } from '../../engine/tensor.js';
import { tidy } from '../../engine/scope.js';
import { consume } from '../consume.js';
import type { Segment } from '../recompute.js';
import type { PCTNet } from './model.js';

/** The segments of `net` for its current mode and multiscale setting. */
export function pctnetSegments(net: PCTNet): Segment[] {
  const ms = net.multiscalePred;
  const emb = net.embedding, p = net.pyramidCt, head = net.predHead;
  const one = (t: Tensor): Tensor[] => [t];
  return [
    {
      name: 'embedding', inputs: ['input'], outputs: ['x0', 'x1', 'x2'], modules: [emb],
      run: ([x]) => { const o = emb.forward(x!); return [o.x0, o.x1, o.x2]; },
    },
    { name: 'e2', inputs: ['x2'], outputs: ['e2'], modules: [p.convtransE2], run: ([x]) => one(p.convtransE2.forward(x!)) },
    {
      name: 'e3', inputs: ['e2'], outputs: ['x3'], modules: [p.down3, p.convtransE3],
      run: ([x]) => one(tidy(() => consume(p.down3.forward(x!), (t) => p.convtransE3.forward(t)))),
    },
    {
      name: 'e4', inputs: ['x3'], outputs: ['x4'], modules: [p.down4, p.convtransE4],
      run: ([x]) => one(tidy(() => consume(p.down4.forward(x!), (t) => p.convtransE4.forward(t)))),
    },
    {
      name: 'd3', inputs: ['x3', 'x4'], outputs: ['xd3'], modules: [p.up4, p.convtransD3],
      run: ([a, b]) => one(tidy(() => consume(p.up4.forward(a!, b!), (t) => p.convtransD3.forward(t)))),
    },
    {
      name: 'd2', inputs: ['e2', 'xd3'], outputs: ['xd2'], modules: [p.up3, p.convtransD2],
      run: ([a, b]) => one(tidy(() => consume(p.up3.forward(a!, b!), (t) => p.convtransD2.forward(t)))),
    },
    {
      name: 'head', inputs: ms ? ['x0', 'x1', 'xd2', 'xd3'] : ['x0', 'x1', 'xd2'], outputs: ms ? ['out0', 'out1', 'out2', 'out3'] : ['out0'],
      modules: [head, p.outConv2, p.outConv3],
      run: ([x0, x1, xd2, xd3]) => tidy(() => {
        const outs = head.forward(x0!, x1!, xd2!, ms);
        return ms ? [...outs, p.outConv2.forward(xd2!), p.outConv3.forward(xd3!)] : outs;
      }),
    },
  ];
}
