package pool

import "time"

// janitor does the pool's housekeeping on a timer, so that Get and Put never
// pay for it: closing connections idle too long or past their lifetime, and
// dialing up to MinSize in the background.
func (p *Pool) janitor() {
	defer p.bg.Done()
	p.tidy(p.clock()) // warm up to MinSize without waiting a tick
	t := time.NewTicker(p.opts.JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
			p.tidy(p.clock())
		}
	}
}

// tidy is one round of the janitor. Connections are closed after the lock
// is released, so a slow Close never holds up Get or Put.
func (p *Pool) tidy(now time.Duration) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	victims := p.victims[:0]
	live := p.dialing.n + p.idle.n + p.active.n
	// From the bottom of the stack: the longest idle go first.
	for s := p.idle.tail; s != nil; {
		prev := s.prev
		idleTooLong := p.opts.IdleTimeout > 0 && now-s.idleSince >= p.opts.IdleTimeout && live > p.opts.MinSize
		if idleTooLong || s.expired(now) {
			p.setState(s, stateClosing)
			victims = append(victims, s)
			live--
		}
		s = prev
	}
	if !p.paused && now >= p.refillAfter {
		n := min(p.opts.MinSize-live, p.opts.Size-p.openLocked())
		for range n {
			s := p.registerDialLocked()
			p.bg.Add(1)
			go p.dialBackground(s)
		}
	}
	p.mu.Unlock()

	p.closeAll(victims)
	clear(victims) // drop the references until the next round
	p.victims = victims[:0]
}

// dialBackground dials one of the MinSize connections. Nobody waits for it,
// so a failure only shows in Stats and delays the next attempt.
func (p *Pool) dialBackground(s *Server) {
	defer p.bg.Done()
	c, err := p.opts.Dial(p.ctx)
	if err == nil && c == nil {
		err = errNoConn
	}
	now := p.clock()

	p.mu.Lock()
	p.dials++
	if err != nil {
		p.dialErrors++
		p.refillFails++
		p.refillAfter = now + refillBackoff(p.opts.JanitorInterval, p.refillFails)
		p.setState(s, stateClosed)
		p.dispatchLocked()
		p.mu.Unlock()
		return
	}
	p.refillFails = 0
	p.initLocked(s, c, now)
	if p.closed || s.gen != p.gen {
		p.setState(s, stateClosing)
		p.mu.Unlock()
		p.finishClose(s)
		return
	}
	if p.waiters.n > 0 && !p.paused {
		s.reused = false
		p.setState(s, stateActive)
		p.serveLocked(grant{s: s})
	} else {
		p.setState(s, stateIdle)
	}
	p.mu.Unlock()
}

// refillBackoff doubles the pause after each consecutive failed background
// dial, from one janitor interval up to maxRefillBackoff.
func refillBackoff(interval time.Duration, fails int) time.Duration {
	d := interval << min(fails-1, 10)
	if d <= 0 || d > maxRefillBackoff {
		d = maxRefillBackoff
	}
	return d
}
