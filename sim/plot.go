package sim

import (
	"fmt"
	"image/color"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// WritePlot draws the completeness curve (share of nodes that had the
// task, and that had answered, over milliseconds since issue) as a PNG.
func (r *Report) WritePlot(path string) error {
	if len(r.Curve) == 0 {
		return fmt.Errorf("plot %s: the report has no curve", path)
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("huntmesh sim: %d nodes, %s links", r.Nodes, r.Setup.Latency)
	p.X.Label.Text = "ms since the hunt was issued"
	p.Y.Label.Text = "share of running nodes"
	p.Y.Min, p.Y.Max = 0, 1.02
	p.Add(plotter.NewGrid())

	delivered := make(plotter.XYs, len(r.Curve))
	answered := make(plotter.XYs, len(r.Curve))
	for i, pt := range r.Curve {
		ms := float64(time.Duration(pt.At).Microseconds()) / 1000
		delivered[i] = plotter.XY{X: ms, Y: pt.Delivered}
		answered[i] = plotter.XY{X: ms, Y: pt.Answered}
	}
	for _, s := range []struct {
		name string
		xys  plotter.XYs
		col  color.Color
	}{
		{"task delivered", delivered, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}},
		{"answer received", answered, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}},
	} {
		l, err := plotter.NewLine(s.xys)
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		l.Color = s.col
		l.Width = vg.Points(2)
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	p.Legend.Top = false
	p.Legend.Left = false
	if err := p.Save(8*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}
