/**
 * Segment descriptions for DICOM-SEG: SNOMED CT codes and display colours for common organ
 * names (TotalSegmentator / BTCV naming), and the sRGB -> DICOM CIELab conversion that
 * RecommendedDisplayCIELabValue needs. Unknown names are coded as generic tissue.
 */

type Code = [value: string, scheme: string, meaning: string];

const ANATOMY: Code = ['123037004', 'SCT', 'Anatomical Structure'];
const TISSUE: Code = ['85756007', 'SCT', 'Tissue'];

/** name (lower case, '_' or ' ') -> [SNOMED CT code, meaning, sRGB colour] */
const ORGANS: ReadonlyArray<[RegExp, string, string, [number, number, number]]> = [
  [/^liver$/, '10200004', 'Liver', [221, 130, 101]],
  [/^spleen$/, '78961009', 'Spleen', [157, 108, 162]],
  [/^kidney_left$|^left_kidney$/, '18639004', 'Left kidney', [185, 102, 83]],
  [/^kidney_right$|^right_kidney$/, '9846003', 'Right kidney', [185, 102, 83]],
  [/^kidney$/, '64033007', 'Kidney', [185, 102, 83]],
  [/^pancreas$/, '15776009', 'Pancreas', [249, 180, 111]],
  [/^stomach$/, '69695003', 'Stomach', [216, 132, 105]],
  [/^gall_?bladder$/, '28231008', 'Gallbladder', [139, 150, 98]],
  [/^aorta$/, '15825003', 'Aorta', [224, 97, 76]],
  [/^inferior_vena_cava$|^ivc$/, '64131007', 'Inferior vena cava', [0, 151, 206]],
  [/^esophagus$|^oesophagus$/, '32849002', 'Esophagus', [211, 171, 143]],
  [/^urinary_bladder$|^bladder$/, '89837001', 'Urinary bladder', [222, 154, 132]],
  [/^heart$/, '80891009', 'Heart', [206, 110, 84]],
  [/^lungs?$/, '39607008', 'Lung', [197, 165, 145]],
  [/^duodenum$/, '38848004', 'Duodenum', [255, 253, 229]],
  [/^small_bowel$|^small_intestine$/, '30315005', 'Small intestine', [205, 167, 142]],
  [/^colon$/, '71854001', 'Colon', [204, 168, 143]],
  [/^adrenal_gland(_left|_right)?$/, '23451007', 'Adrenal gland', [249, 186, 150]],
  [/^prostate$/, '41216001', 'Prostate', [230, 158, 140]],
  [/^brain$/, '12738006', 'Brain', [250, 250, 225]],
];

const key = (name: string): string => name.trim().toLowerCase().replace(/[\s-]+/g, '_');

/** Category and type codes for a segment name. */
export function segmentCodes(name: string): { category: Code; type: Code } {
  const k = key(name);
  const hit = ORGANS.find(([re]) => re.test(k));
  return hit === undefined ? { category: TISSUE, type: TISSUE } : { category: ANATOMY, type: [hit[1], 'SCT', hit[2]] };
}

/** Distinct colours for names without one of their own (cycled). */
const PALETTE: ReadonlyArray<[number, number, number]> = [
  [128, 174, 128], [241, 214, 145], [177, 122, 101], [111, 184, 210], [216, 101, 79], [221, 130, 101], [144, 238, 144],
  [192, 104, 88], [220, 245, 20], [78, 63, 0], [255, 250, 220], [230, 220, 70], [200, 200, 235], [250, 250, 210],
];

/** The colour of a segment: the organ's own, else the palette's `index`-th. */
export function defaultColour(name: string, index: number): [number, number, number] {
  const hit = ORGANS.find(([re]) => re.test(key(name)));
  return hit !== undefined ? hit[3] : PALETTE[index % PALETTE.length]!;
}

const D65 = [0.95047, 1, 1.08883];

/** sRGB (0-255) to DICOM's scaled CIELab (PS3.3 C.10.7.1.1: L 0..65535, a/b offset by 128 and scaled by 65535/255). */
export function rgbToDicomLab(rgb: readonly [number, number, number]): [number, number, number] {
  const lin = rgb.map((c) => { const v = c / 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
  const xyz = [
    0.4124564 * lin[0]! + 0.3575761 * lin[1]! + 0.1804375 * lin[2]!,
    0.2126729 * lin[0]! + 0.7151522 * lin[1]! + 0.0721750 * lin[2]!,
    0.0193339 * lin[0]! + 0.1191920 * lin[1]! + 0.9503041 * lin[2]!,
  ];
  const f = (t: number): number => (t > (6 / 29) ** 3 ? Math.cbrt(t) : t / (3 * (6 / 29) ** 2) + 4 / 29);
  const [fx, fy, fz] = xyz.map((v, i) => f(v / D65[i]!)) as [number, number, number];
  const L = 116 * fy - 16, a = 500 * (fx - fy), b = 200 * (fy - fz);
  const clamp = (v: number): number => Math.min(65535, Math.max(0, Math.round(v)));
  return [clamp(L * 65535 / 100), clamp((a + 128) * 65535 / 255), clamp((b + 128) * 65535 / 255)];
}

/** DICOM scaled CIELab back to sRGB (0-255), for reading SEG colours. */
export function dicomLabToRgb(lab: readonly number[]): [number, number, number] {
  const L = lab[0]! * 100 / 65535, a = lab[1]! * 255 / 65535 - 128, b = lab[2]! * 255 / 65535 - 128;
  const fy = (L + 16) / 116, fx = fy + a / 500, fz = fy - b / 200;
  const inv = (t: number): number => (t > 6 / 29 ? t ** 3 : 3 * (6 / 29) ** 2 * (t - 4 / 29));
  const [X, Y, Z] = [inv(fx) * D65[0]!, inv(fy) * D65[1]!, inv(fz) * D65[2]!];
  const lin = [
    3.2404542 * X - 1.5371385 * Y - 0.4985314 * Z,
    -0.9692660 * X + 1.8760108 * Y + 0.0415560 * Z,
    0.0556434 * X - 0.2040259 * Y + 1.0572252 * Z,
  ];
  return lin.map((v) => {
    const c = v <= 0.0031308 ? 12.92 * v : 1.055 * v ** (1 / 2.4) - 0.055;
    return Math.min(255, Math.max(0, Math.round(c * 255)));
  }) as [number, number, number];
}
