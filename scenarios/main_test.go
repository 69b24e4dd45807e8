package scenarios

import (
	"testing"

	"txtimeout/scenario"
)

func TestMain(m *testing.M) { scenario.Main(m) }
