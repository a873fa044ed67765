package fleet

import (
	"testing"
)

func TestIDs(t *testing.T) {
	for _, inst := range []int{1, 2, 512, 1023} {
		for _, low := range []uint32{0, 1, LowMask, 0xffffffff} {
			id := ID(inst, low)
			if int32(id) < 0 || Owner(uint64(id)) != inst || id&LowMask != low&LowMask {
				t.Errorf("ID(%d, %#x) = %#x: owner %d", inst, low, id, Owner(uint64(id)))
			}
		}
	}
	if Owner(1<<31) != 0 || Owner(1<<40) != 0 {
		t.Error("an id above 31 bits has an owner")
	}
}
