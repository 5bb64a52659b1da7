package main

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// palette gives each configuration one color across all charts (chosen to
// stay distinguishable, including for common color-vision deficiencies).
// The first five go to the multiserve classes, the rest to the peers.
var palette = []string{
	"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
	"#000000", "#7F7F7F", "#8C564B", "#9467BD", "#BCBD22", "#17BECF", "#56B4E9",
}

// Chart geometry, in SVG user units (pixels).
const (
	chartW, chartH           = 820, 440
	plotL, plotR             = 80, 600 // plot area, left and right edges
	plotT, plotB             = 48, 370 // top and bottom edges
	legendX                  = 618
	fontAttrs                = `font-family="Helvetica, Arial, sans-serif"`
	axisColor, gridColor     = "#333333", "#e4e4e4"
	tickLen                  = 5
	markerR                  = 3.5
	legendRowH               = 18
	titleSize, labelSize     = 15, 12
	tickSize, legendFontSize = 11, 12
)

// series is one line on a chart.
type series struct {
	name   string
	color  string
	dashed bool
	square bool // square markers (peers), circles otherwise
	xs, ys []float64
}

// lineChart is an x/y chart with log-scale x (concurrency levels) and a
// linear or log y.
type lineChart struct {
	title, xLabel, yLabel string
	logY                  bool
	series                []series
	legend                []legendEntry
	yTick                 func(float64) string
}

type legendEntry struct {
	name, color string
	dashed      bool
}

// axis maps values to pixels on one axis.
type axis struct {
	lo, hi   float64 // in value space (log10 already applied when log)
	log      bool
	p0, p1   float64 // pixel positions of lo and hi
	ticks    []float64
	tickText func(float64) string
}

func (a axis) px(v float64) float64 {
	if a.log {
		v = math.Log10(v)
	}
	if a.hi == a.lo {
		return (a.p0 + a.p1) / 2
	}
	return a.p0 + (v-a.lo)/(a.hi-a.lo)*(a.p1-a.p0)
}

func (c lineChart) svg() string {
	var xs, ys []float64
	for _, s := range c.series {
		for i := range s.xs {
			if s.ys[i] > 0 || !c.logY {
				xs, ys = append(xs, s.xs[i]), append(ys, s.ys[i])
			}
		}
	}
	var b strings.Builder
	svgOpen(&b, c.title, chartH)
	if len(xs) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-size="%d" %s>no data</text>`+"\n", chartW/2, chartH/2, labelSize, fontAttrs)
		b.WriteString("</svg>\n")
		return b.String()
	}
	xa := concurrencyAxis(xs)
	ya := valueAxis(ys, c.logY, plotB, plotT)
	ya.tickText = c.yTick
	drawAxes(&b, xa, ya, c.xLabel, c.yLabel)
	// Earlier configurations are drawn wider, later ones narrower on top:
	// where two series coincide, the one below still shows as a rim.
	layers := map[string]int{}
	for _, s := range c.series {
		if _, ok := layers[s.color]; !ok {
			layers[s.color] = len(layers)
		}
	}
	for _, s := range c.series {
		drawSeries(&b, s, xa, ya, c.logY, 1-float64(layers[s.color])/float64(max(1, len(layers)-1)))
	}
	drawLegend(&b, c.legend)
	b.WriteString("</svg>\n")
	return b.String()
}

func svgOpen(b *strings.Builder, title string, h int) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`+"\n", chartW, h, chartW, h)
	fmt.Fprintf(b, "<title>%s</title>\n", html.EscapeString(title))
	fmt.Fprintf(b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartW, h)
	fmt.Fprintf(b, `<text x="%d" y="26" text-anchor="middle" font-size="%d" font-weight="bold" %s>%s</text>`+"\n",
		chartW/2, titleSize, fontAttrs, html.EscapeString(title))
}

// concurrencyAxis is a log2 x axis with a tick at every measured level.
func concurrencyAxis(xs []float64) axis {
	lo, hi := minMax(xs)
	a := axis{lo: math.Log10(lo), hi: math.Log10(hi), log: true, p0: plotL + 20, p1: plotR - 20}
	seen := map[float64]bool{}
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			a.ticks = append(a.ticks, x)
		}
	}
	a.tickText = func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	return a
}

// valueAxis fits ys with "nice" ticks: 1-2-5 steps from zero when linear,
// decades (and 2, 5 between them when there are few) when log.
func valueAxis(ys []float64, logScale bool, p0, p1 float64) axis {
	lo, hi := minMax(ys)
	if !logScale {
		if hi <= 0 {
			hi = 1
		}
		step := niceStep(hi / 5)
		top := math.Ceil(hi*1.05/step) * step
		a := axis{lo: 0, hi: top, p0: p0, p1: p1}
		for v := 0.0; v <= top+step/2; v += step {
			a.ticks = append(a.ticks, v)
		}
		return a
	}
	dlo, dhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dhi == dlo {
		dhi++
	}
	a := axis{lo: dlo, hi: dhi, log: true, p0: p0, p1: p1}
	for d := dlo; d <= dhi; d++ {
		base := math.Pow(10, d)
		a.ticks = append(a.ticks, base)
		if dhi-dlo <= 2 && d < dhi {
			a.ticks = append(a.ticks, 2*base, 5*base)
		}
	}
	return a
}

// niceStep rounds x up to 1, 2, 2.5 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if x <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func minMax(v []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range v {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi
}

func drawAxes(b *strings.Builder, xa, ya axis, xLabel, yLabel string) {
	for _, t := range ya.ticks {
		y := ya.px(t)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", plotL, y, plotR, y, gridColor)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", plotL-tickLen, y, plotL, y, axisColor)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle" font-size="%d" %s>%s</text>`+"\n",
			plotL-tickLen-3, y, tickSize, fontAttrs, html.EscapeString(ya.tickText(t)))
	}
	for _, t := range xa.ticks {
		x := xa.px(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x, plotT, x, plotB, gridColor)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x, plotB, x, plotB+tickLen, axisColor)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="%d" %s>%s</text>`+"\n",
			x, plotB+tickLen+14, tickSize, fontAttrs, html.EscapeString(xa.tickText(t)))
	}
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n", plotL, plotT, plotR-plotL, plotB-plotT, axisColor)
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle" font-size="%d" %s>%s</text>`+"\n",
		(plotL+plotR)/2, plotB+44, labelSize, fontAttrs, html.EscapeString(xLabel))
	cy := (plotT + plotB) / 2
	fmt.Fprintf(b, `<text x="18" y="%d" text-anchor="middle" font-size="%d" transform="rotate(-90 18 %d)" %s>%s</text>`+"\n",
		cy, labelSize, cy, fontAttrs, html.EscapeString(yLabel))
}

// drawSeries draws one line; depth 1 is the bottom layer (widest), 0 the top.
func drawSeries(b *strings.Builder, s series, xa, ya axis, logY bool, depth float64) {
	width, r := 2+4*depth, markerR+3*depth
	var pts []string
	for i := range s.xs {
		if logY && s.ys[i] <= 0 {
			continue // no point on a log axis (e.g. nothing completed)
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", xa.px(s.xs[i]), ya.px(s.ys[i])))
	}
	if len(pts) == 0 {
		return
	}
	dash := ""
	if s.dashed {
		dash = ` stroke-dasharray="6 4"`
	}
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="%.1f"%s><title>%s</title></polyline>`+"\n",
		strings.Join(pts, " "), s.color, width, dash, html.EscapeString(s.name))
	for _, p := range pts {
		x, y, _ := strings.Cut(p, ",")
		fill := s.color
		if s.dashed {
			fill = "#ffffff"
		}
		if s.square {
			xf, _ := strconv.ParseFloat(x, 64)
			yf, _ := strconv.ParseFloat(y, 64)
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" stroke="%s" stroke-width="1.5"/>`+"\n",
				xf-r, yf-r, 2*r, 2*r, fill, s.color)
			continue
		}
		fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="%.1f" fill="%s" stroke="%s" stroke-width="1.5"/>`+"\n", x, y, r, fill, s.color)
	}
}

func drawLegend(b *strings.Builder, entries []legendEntry) {
	for i, e := range entries {
		y := float64(plotT + 8 + i*legendRowH)
		dash := ""
		if e.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="2.5"%s/>`+"\n", legendX, y, legendX+26, y, e.color, dash)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" dominant-baseline="middle" font-size="%d" %s>%s</text>`+"\n",
			legendX+32, y, legendFontSize, fontAttrs, html.EscapeString(e.name))
	}
}

// barChart is a horizontal bar chart, one bar per configuration.
type barChart struct {
	title, xLabel string
	bars          []bar
	valueText     func(float64) string
}

type bar struct {
	name, color string
	value       float64
	note        string // shown instead of a bar when there is no value
}

func (c barChart) svg() string {
	var b strings.Builder
	rowH := 26.0
	top := float64(plotT + 6)
	bottom := top + rowH*float64(len(c.bars))
	svgOpen(&b, c.title, int(bottom+54))
	var vals []float64
	for _, br := range c.bars {
		if br.note == "" {
			vals = append(vals, br.value)
		}
	}
	left, right := 200.0, float64(chartW-120)
	xa := valueAxis(append(vals, 0), false, left, right)
	xa.tickText = humanNumber
	for _, t := range xa.ticks {
		x := xa.px(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x, top, x, bottom, gridColor)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="%d" %s>%s</text>`+"\n",
			x, bottom+16, tickSize, fontAttrs, html.EscapeString(humanNumber(t)))
	}
	for i, br := range c.bars {
		y := top + rowH*float64(i)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle" font-size="%d" %s>%s</text>`+"\n",
			left-8, y+rowH/2, legendFontSize, fontAttrs, html.EscapeString(br.name))
		if br.note != "" {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" dominant-baseline="middle" font-size="%d" fill="#777777" %s>%s</text>`+"\n",
				left+6, y+rowH/2, tickSize, fontAttrs, html.EscapeString(br.note))
			continue
		}
		w := xa.px(br.value) - left
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", left, y+4, math.Max(w, 1), rowH-8, br.color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" dominant-baseline="middle" font-size="%d" %s>%s</text>`+"\n",
			left+math.Max(w, 1)+6, y+rowH/2, tickSize, fontAttrs, html.EscapeString(c.valueText(br.value)))
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", left, top, left, bottom, axisColor)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="%d" %s>%s</text>`+"\n",
		(left+right)/2, bottom+38, labelSize, fontAttrs, html.EscapeString(c.xLabel))
	b.WriteString("</svg>\n")
	return b.String()
}

// humanNumber prints 950, 1.2k, 45k, 1.5M.
func humanNumber(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trimZero(strconv.FormatFloat(v/1e6, 'f', 1, 64)) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case a >= 1e3:
		return trimZero(strconv.FormatFloat(v/1e3, 'f', 1, 64)) + "k"
	case a >= 10 || a == 0:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 1:
		return trimZero(strconv.FormatFloat(v, 'f', 1, 64))
	}
	return trimZero(strconv.FormatFloat(v, 'g', 2, 64))
}

func trimZero(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
