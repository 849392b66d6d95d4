"""Build the topology, price collectives, compile the program and simulate one step event by event."""

from dataclasses import dataclass

from simulator.collectives.experts import ExpertRouting
from simulator.collectives.groups import Layout
from simulator.collectives.pricing import CommPricer
from simulator.engine.core import EngineResult, StepSimulation
from simulator.enums import Fidelity
from simulator.program.blocks import Program
from simulator.program.compile import compile_program
from simulator.topology import build_topology
from simulator.workload.step import StepWork


@dataclass(frozen=True)
class SimulatedStep:
    """The engine's result with the program it executed (the trace writer expands its segments)."""

    result: EngineResult
    program: Program


def simulate_step(work: StepWork) -> SimulatedStep:
    setup = work.setup
    topo = build_topology(setup.cluster)
    pricer = CommPricer(
        topo, Layout.of(setup.plan), setup.cluster.collective_algorithm, ExpertRouting.of(setup.model, setup.plan)
    )
    program = compile_program(work, pricer)
    result = StepSimulation(setup, program, pricer, full=setup.fidelity is Fidelity.FULL).run()
    return SimulatedStep(result, program)
