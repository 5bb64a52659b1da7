package stats

import (
	"fmt"
	"html/template"
	"maps"
	"slices"
	"strings"
	"time"
)

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"bytes": humanBytes,
	"duration": func(sec float64) string {
		return (time.Duration(sec*float64(time.Second)) / time.Second * time.Second).String()
	},
	"ms": ago,
	"nonzero": func(m map[string]uint64) string {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if m[k] > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
			}
		}
		return strings.Join(parts, ", ")
	},
	"bound": func(sec float64) string {
		if sec < 0 {
			return "∞"
		}
		return ago(sec)
	},
	"pct": func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>multiserve: {{.Class}} × {{.Summary.Workers}}</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em}
.sum span{display:inline-block;margin-right:1.5em}
table{border-collapse:collapse;margin-top:1em;min-width:60em}
th,td{padding:.3em .7em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th{background:#f4f4f4}
td.l,th.l{text-align:left}
.handling{background:#ffe9b3}.idle{background:#e3f6e3}.booting{background:#dde8ff}.retiring{background:#eee;color:#777}
.keep-alive,.reading{background:#f0f0ff}
small{color:#666}
</style></head><body>
<h1>multiserve · arbiter {{.ArbiterPID}} · class <b>{{.Class}}</b></h1>
<div class="sum">
<span>workers <b>{{.Summary.Workers}}</b> / target {{.Target}}</span>
<span>busy <b>{{.Summary.Busy}}</b></span><span>idle <b>{{.Summary.Idle}}</b></span>
<span>booting {{.Summary.Booting}}</span><span>retiring {{.Summary.Retiring}}</span>
<span>saturation <b>{{pct .Summary.Saturation}}</b></span><span>in flight {{.Summary.InFlight}}</span><span>connections {{.Summary.Connections}}</span>
{{if .Draining}}<span><b>draining</b></span>{{end}}
</div>
<div class="sum"><span>{{.Summary.Workers}} worker processes, {{.Summary.Threads}} OS threads in all</span></div>
<div class="sum">{{range $c, $t := .Classes}}<span>{{$c}}: {{$t.Requests}} requests ({{nonzero $t.Responses}}), {{bytes $t.Bytes}} out, latency mean {{ms $t.LatencyMean}}, p50 ≤ {{bound $t.LatencyP50}}, p99 ≤ {{bound $t.LatencyP99}}{{if or $t.Promotions $t.Demotions}}, routes promoted {{$t.Promotions}}, demoted {{$t.Demotions}}{{end}}</span>{{end}}
{{range .Listeners}}{{if .Measured}}<span>{{.Name}}: accept queue {{.Queue}}/{{.Backlog}}</span>{{end}}{{end}}</div>
<table>
<tr><th>pid</th><th>age</th><th>gen</th><th class="l">class</th><th class="l">state</th><th>up</th><th>requests</th><th>in flight</th><th>connections</th><th>bytes out</th><th>RSS</th><th>threads</th><th class="l">current / last request</th></tr>
{{range .Workers}}<tr class="{{.State}}">
<td>{{.PID}}</td><td>{{.Age}}</td><td>{{.Generation}}</td><td class="l">{{.Class}}</td><td class="l">{{.State}}</td>
<td>{{duration .UptimeSec}}</td><td>{{.Requests}}</td><td>{{.InFlight}}</td><td>{{.Connections}}</td><td>{{bytes .Bytes}}</td>
<td>{{bytes .RSSBytes}}</td><td>{{.Threads}}</td>
<td class="l" style="white-space:normal">{{with .Current}}{{.Method}} {{.Path}} <small>from {{.Client}}, {{if .Running}}running {{else}}started {{end}}{{ms .AgeSec}}{{if not .Running}} ago{{end}}</small>{{end}}</td>
</tr>{{if .Routes}}<tr><td></td><td colspan="12" class="l"><small>routes:</small>{{range .Routes}}<br><small><b>{{.Placement}}</b>{{if .Pinned}} (pinned){{end}} {{.Route}} · {{.Samples}} requests, handler mean {{.Mean}}, max {{.Max}}{{if or .Promotions .Demotions}} · promoted {{.Promotions}}, demoted {{.Demotions}}{{end}}</small>{{end}}</td></tr>{{end}}{{end}}
</table>
<p><small>Refreshes every 2 s · <a href="/status">/status</a> (JSON) · <a href="/metrics">/metrics</a> (Prometheus) · threads and RSS from /proc/PID/status</small></p>
</body></html>
`))

// ago formats a request's age: ms below a second, then seconds.
func ago(sec float64) string {
	if sec < 1 {
		return fmt.Sprintf("%.0f ms", sec*1000)
	}
	return fmt.Sprintf("%.1f s", sec)
}

func humanBytes(v any) string {
	var n float64
	switch x := v.(type) {
	case uint64:
		n = float64(x)
	case int64:
		n = float64(x)
	}
	for _, unit := range []string{"B", "KiB", "MiB", "GiB"} {
		if n < 1024 || unit == "GiB" {
			if unit == "B" {
				return fmt.Sprintf("%.0f %s", n, unit)
			}
			return fmt.Sprintf("%.1f %s", n, unit)
		}
		n /= 1024
	}
	return ""
}
